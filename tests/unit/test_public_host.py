"""Which addresses count as public for a portal domain: every address a name resolves to must be a global one."""

from __future__ import annotations

import json

import pytest

from leadbridge.http.public_host import RESOLVE_OVERRIDE_ENV, NonPublicHost, require_public


@pytest.mark.parametrize(
    ("addresses", "public"),
    [
        (["93.184.216.34"], True),
        (["2606:2800:220:1:248:1893:25c8:1946"], True),
        ([], True),  # resolves nowhere (yet): nothing to reach; the connect checks again
        (["127.0.0.1"], False),
        (["::1"], False),
        (["::ffff:127.0.0.1"], False),  # IPv4-mapped loopback
        (["169.254.169.254"], False),  # the instance metadata address
        (["fe80::1"], False),
        (["10.1.2.3"], False),
        (["172.16.0.1"], False),
        (["192.168.1.1"], False),
        (["100.64.0.1"], False),  # carrier-grade NAT
        (["0.0.0.0"], False),  # noqa: S104 - an address to refuse, not to bind
        (["93.184.216.34", "127.0.0.1"], False),  # one private answer is enough
        (["not-an-address"], False),
    ],
)
def test_every_address_must_be_global(monkeypatch: pytest.MonkeyPatch, addresses: list[str], public: bool) -> None:
    monkeypatch.setenv(RESOLVE_OVERRIDE_ENV, json.dumps({"portal.example.ru": addresses}))
    if public:
        require_public("portal.example.ru")
    else:
        with pytest.raises(NonPublicHost):
            require_public("portal.example.ru")

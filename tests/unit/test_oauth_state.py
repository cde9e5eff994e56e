from __future__ import annotations

import pytest

from leadbridge.flows.connect.state import StateError, StateSigner


class Nonces:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def consume_state(self, integration_id: str, nonce: str, expires_at: int) -> bool:
        if nonce in self.used:
            return False
        self.used.add(nonce)
        return True


def signer(now: float = 1_000_000.0) -> StateSigner:
    return StateSigner(lambda: "k" * 64, clock=lambda: now)


def test_round_trip_once() -> None:
    nonces = Nonces()
    state = signer().sign("amo-1")
    assert signer().consume(state, nonces).integration_id == "amo-1"
    with pytest.raises(StateError, match="already_used"):
        signer().consume(state, nonces)


@pytest.mark.parametrize(
    "mutate",
    [lambda s: s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1], lambda s: "x" + s, lambda s: s.replace(".", "")],
)
def test_tampered(mutate: object) -> None:
    state = signer().sign("amo-1")
    with pytest.raises(StateError):
        signer().verify(mutate(state))  # type: ignore[operator]


def test_other_key_rejected() -> None:
    state = signer().sign("amo-1")
    with pytest.raises(StateError, match="bad_signature"):
        StateSigner(lambda: "other", clock=lambda: 1_000_000.0).verify(state)


def test_expired() -> None:
    state = signer(now=1_000_000.0).sign("amo-1", ttl_seconds=60)
    with pytest.raises(StateError, match="expired"):
        signer(now=1_000_061.0).verify(state)


@pytest.mark.parametrize("state", [None, "", "a.b.c", "%%%.%%%", "x" * 600])
def test_malformed(state: str | None) -> None:
    with pytest.raises(StateError):
        signer().verify(state)

"""Is a host a public one? A Bitrix24 portal is any domain its admin types, and the worker sends the portal's OAuth
token to it: a domain that resolves to loopback, a private network or the link-local metadata address
(``127.0.0.1.nip.io``, ``169.254.169.254.nip.io``, ``localtest.me``) would turn the stack into a proxy into its own
network. So portal domains are resolved when saved and again before each connect, and refused unless every
address is a global one.

A name that does not resolve (yet) is not refused here: it cannot be reached either, and the connect checks again.
A local stack, which has no DNS, names its answers in ``LEADBRIDGE_RESOLVE_OVERRIDE`` (JSON: host -> addresses).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket

RESOLVE_OVERRIDE_ENV = "LEADBRIDGE_RESOLVE_OVERRIDE"


class NonPublicHost(ValueError):
    """The host resolves to an address that is not a public one."""


def _addresses(host: str) -> list[str]:
    override = os.environ.get(RESOLVE_OVERRIDE_ENV)
    if override:
        answers = json.loads(override).get(host.lower())
        if answers is not None:
            return [str(a) for a in answers]
    try:
        found = socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return [str(info[4][0]) for info in found]


def require_public(host: str) -> None:
    """Raise ``NonPublicHost`` (naming the host, never anything secret) unless every address of ``host`` is
    global: not loopback, private, link-local, shared, reserved, multicast or unspecified."""
    for address in _addresses(host):
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            raise NonPublicHost(f"{host} resolves to an address that is not an IP address") from None
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if not (mapped or ip).is_global:
            raise NonPublicHost(f"{host} resolves to a non-public address ({address}); use the portal's public domain")

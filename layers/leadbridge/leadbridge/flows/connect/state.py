"""The OAuth ``state``: signed (HMAC-SHA256), carrying the integration id, expiring, usable once.

``<payload>.<signature>``, both base64url: payload ``{"i": integration id, "n": nonce, "e": expires at}``. The
signature is compared in constant time. Single use is enforced by the store: consuming a state writes its nonce
with a conditional put, so a replay finds it taken.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

STATE_TTL_SECONDS = 30 * 60
MAX_STATE_LENGTH = 512


class StateError(Exception):
    """Tampered, malformed, expired or already used."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedState:
    integration_id: str
    nonce: str
    expires_at: int


class NonceStore(Protocol):
    def consume_state(self, integration_id: str, nonce: str, expires_at: int) -> bool:
        """True the first time a nonce is consumed, False afterwards."""
        ...


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StateSigner:
    """``key_source`` is called once, on first use: a function's cold start does not wait for Secrets Manager."""

    def __init__(self, key_source: Callable[[], str], clock: Callable[[], float] = time.time) -> None:
        self._key_source = key_source
        self._key: bytes | None = None
        self.clock = clock

    def sign(self, integration_id: str, ttl_seconds: int = STATE_TTL_SECONDS) -> str:
        payload = json.dumps(
            {"i": integration_id, "n": secrets.token_urlsafe(16), "e": int(self.clock()) + ttl_seconds},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, state: str | None) -> VerifiedState:
        if not state or len(state) > MAX_STATE_LENGTH or state.count(".") != 1:
            raise StateError("malformed")
        encoded, signature = state.split(".")
        try:
            payload, given = _unb64(encoded), _unb64(signature)
        except (binascii.Error, ValueError) as exc:
            raise StateError("malformed") from exc
        if not hmac.compare_digest(given, self._mac(payload)):
            raise StateError("bad_signature")
        try:
            data = json.loads(payload)
            verified = VerifiedState(str(data["i"]), str(data["n"]), int(data["e"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError("malformed") from exc
        if verified.expires_at < self.clock():
            raise StateError("expired")
        return verified

    def consume(self, state: str | None, nonces: NonceStore) -> VerifiedState:
        verified = self.verify(state)
        if not nonces.consume_state(verified.integration_id, verified.nonce, verified.expires_at):
            raise StateError("already_used")
        return verified

    def _mac(self, payload: bytes) -> bytes:
        if self._key is None:
            self._key = hashlib.sha256(b"leadbridge oauth state|" + self._key_source().encode()).digest()
        return hmac.new(self._key, payload, hashlib.sha256).digest()

"""Per-integration webhook secrets: issued once, stored only as a hash, compared in constant time.

amoCRM account webhooks carry no signature, so the URL carries the secret. It is a 256-bit random value, so a
plain SHA-256 is enough (no slow KDF is needed against guessing).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_DUMMY_HASH = "sha256:" + "0" * 64


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(given: str | None, stored_hash: str | None) -> bool:
    """True when ``given`` hashes to ``stored_hash``. Takes the same time whether or not a hash is stored."""
    candidate = hash_secret(given or "")
    expected = stored_hash or _DUMMY_HASH
    return hmac.compare_digest(candidate.encode(), expected.encode()) and stored_hash is not None and bool(given)

"""The JWT amoCRM signs a Salesbot ``widget_request`` with (reference/amocrm-chats-events-dp.md E.3).

HS512 with the integration's OAuth client secret, claims ``iss, aud, iat, nbf, exp, account_id, subdomain,
entity_type, entity_id`` (the official library verifies it exactly so: ``AmoCRMOAuth::parseBotDisposableToken``).
Only HS512 is accepted (never ``none``, never an algorithm the token names for itself), the signature is compared
in constant time, and the times hold with a minute of clock skew. Anything else is :class:`InvalidBotToken`, whose
message never repeats the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from typing import Any, NamedTuple

LEEWAY_SECONDS = 60
MAX_TOKEN_BYTES = 4096
MAX_EPOCH_SECONDS = 10**11  # year 5138: a time past this is no time
# amoCRM's own PHP library reads ``entity_type`` as a number (the element types: 1 contacts, 2 leads, 3 companies,
# 12 customers); the string form names the same ones.
ENTITY_TYPES = {"1": "contacts", "2": "leads", "3": "companies", "12": "customers"}


class InvalidBotToken(ValueError):
    pass


class BotClaims(NamedTuple):
    account_id: str | None
    subdomain: str | None
    entity_type: str | None
    entity_id: str | None
    expires_at: int
    token_id: str  # one per token: its ``jti`` when it has one, else a digest of what its signature signs


def _b64decode(part: str) -> bytes:
    if not part or not part.isascii():
        raise InvalidBotToken("malformed token")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidBotToken("malformed token") from exc


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign_bot_token(claims: dict[str, Any], secret: str) -> str:
    """A token as amoCRM makes one (the local fake amoCRM and the tests sign with this)."""
    header = _b64encode(json.dumps({"typ": "JWT", "alg": "HS512"}, separators=(",", ":")).encode())
    body = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha512).digest()
    return f"{header}.{body}.{_b64encode(signature)}"


def verify_bot_token(token: object, secret: str | None, now: float) -> BotClaims:
    if not secret:
        raise InvalidBotToken("no client secret to verify with")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise InvalidBotToken("malformed token")
    header_part, body_part, signature_part = token.split(".")
    expected = hmac.new(secret.encode(), f"{header_part}.{body_part}".encode(), hashlib.sha512).digest()
    if not hmac.compare_digest(expected, _b64decode(signature_part)):
        raise InvalidBotToken("bad signature")
    header, claims = _json(_b64decode(header_part)), _json(_b64decode(body_part))
    if header.get("alg") != "HS512":
        raise InvalidBotToken("not HS512")
    expires_at = _time(claims, "exp")
    if expires_at is None or expires_at + LEEWAY_SECONDS < now:
        raise InvalidBotToken("expired")
    not_before = _time(claims, "nbf")
    issued = _time(claims, "iat")
    if (not_before is not None and not_before - LEEWAY_SECONDS > now) or (
        issued is not None and issued - LEEWAY_SECONDS > now
    ):
        raise InvalidBotToken("not valid yet")
    return BotClaims(
        account_id=_id(claims.get("account_id")),
        subdomain=claims["subdomain"][:100] if isinstance(claims.get("subdomain"), str) else None,
        entity_type=_entity_type(claims.get("entity_type")),
        entity_id=_id(claims.get("entity_id")),
        expires_at=expires_at,
        token_id=_token_id(claims.get("jti"), header_part, body_part),
    )


def _entity_type(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return ENTITY_TYPES.get(str(value))
    if isinstance(value, str):
        return ENTITY_TYPES.get(value, value[:30])
    return None


def _token_id(jti: object, header_part: str, body_part: str) -> str:
    if isinstance(jti, str) and 0 < len(jti) <= 200:
        return hashlib.sha256(f"jti|{jti}".encode()).hexdigest()[:40]
    return hashlib.sha256(f"{header_part}.{body_part}".encode()).hexdigest()[:40]


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidBotToken("malformed token") from exc
    if not isinstance(value, dict):
        raise InvalidBotToken("malformed token")
    return value


def _time(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidBotToken(f"bad {name}")
    if not math.isfinite(value) or not 0 <= value <= MAX_EPOCH_SECONDS:  # 1e400 parses as inf, NaN as nan
        raise InvalidBotToken(f"bad {name}")
    return int(value)


def _id(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return value
    return None

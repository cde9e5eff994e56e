"""Signing for amojo, both ways (reference/amocrm.md §4.1, §4.2; amocrm-chats-events-dp.md D.2).

- Requests to amojo: ``Content-MD5`` is the lower-case md5 of the exact bytes sent (of the empty string for a
  GET); ``X-Signature`` is the lower-case hex HMAC-SHA1 of ``METHOD\\nContent-MD5\\nContent-Type\\nDate\\npath``, keyed
  with the channel secret taken as an ASCII string (never hex-decoded: amojo answers ORIGIN_INVALID_SIGNATURE).
- Hooks from amojo: ``X-Signature`` is the hex HMAC-SHA1 of the body. It is compared in constant time, over the
  raw bytes and then over the body without a trailing newline (peer clients trim it).
"""

from __future__ import annotations

import hashlib
import hmac
from email.utils import formatdate

CONTENT_TYPE = "application/json"


def rfc2822_now(now: float) -> str:
    """``Thu, 29 Oct 2020 11:59:55 +0000``, the form the docs show."""
    return formatdate(now, usegmt=False).replace("-0000", "+0000")


def content_md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def request_signature(secret: str, method: str, md5: str, content_type: str, date: str, path: str) -> str:
    text = "\n".join([method.upper(), md5, content_type, date, path])
    return hmac.new(secret.encode("ascii"), text.encode("utf-8"), hashlib.sha1).hexdigest()


def signed_headers(secret: str, method: str, path: str, body: bytes, now: float) -> dict[str, str]:
    """The four headers of a request to amojo, for exactly these bytes and this path (no query string)."""
    date = rfc2822_now(now)
    md5 = content_md5(body)
    return {
        "Date": date,
        "Content-Type": CONTENT_TYPE,
        "Content-MD5": md5,
        "X-Signature": request_signature(secret, method, md5, CONTENT_TYPE, date, path),
    }


def request_signature_valid(secret: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> bool:
    """What amojo checks (the local fake amojo checks with this): the md5 is of these bytes and the signature of
    these headers and path."""
    md5 = headers.get("content-md5", "")
    if not hmac.compare_digest(md5.encode(), content_md5(body).encode()):
        return False
    expected = request_signature(secret, method, md5, headers.get("content-type", ""), headers.get("date", ""), path)
    return hmac.compare_digest(expected.encode(), headers.get("x-signature", "").lower().encode())


def hook_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("ascii"), body, hashlib.sha1).hexdigest()


def hook_signature_valid(secret: str, body: bytes, signature: str) -> bool:
    given = signature.strip().lower().encode("ascii", "replace")
    if hmac.compare_digest(hook_signature(secret, body).encode(), given):
        return True
    for trimmed in {body.removesuffix(b"\n"), body.removesuffix(b"\r\n")} - {body}:  # a newline added in transit
        if hmac.compare_digest(hook_signature(secret, trimmed).encode(), given):
            return True
    return False

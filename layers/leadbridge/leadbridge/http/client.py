"""The process's one HTTP client to the CRMs, and where requests go.

In AWS every request goes to the CRM's real host. A local stack sets ``LEADBRIDGE_CRM_ORIGIN_OVERRIDE`` to the
fake CRM server's origin: the request goes there instead, naming the real host in ``X-Original-Host``, so the
same code builds the same URLs in both places.
"""

from __future__ import annotations

import os
from functools import cache
from urllib.parse import urlsplit, urlunsplit

import httpx

ORIGIN_OVERRIDE_ENV = "LEADBRIDGE_CRM_ORIGIN_OVERRIDE"
ORIGINAL_HOST_HEADER = "X-Original-Host"
TIMEOUT_ENV = "LEADBRIDGE_CRM_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 10.0
USER_AGENT = "leadbridge/1.0 (+https://github.com/leadbridge)"


@cache
def crm_http() -> httpx.Client:
    seconds = float(os.environ.get(TIMEOUT_ENV, "") or DEFAULT_TIMEOUT_SECONDS)
    return httpx.Client(
        timeout=httpx.Timeout(seconds, connect=min(3.0, seconds)),
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


def route(url: str) -> tuple[str, dict[str, str]]:
    """The URL to call and any extra headers, honouring the local override."""
    override = os.environ.get(ORIGIN_OVERRIDE_ENV, "").strip()
    if not override:
        return url, {}
    parts = urlsplit(url)
    target = urlsplit(override)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, "")), {ORIGINAL_HOST_HEADER: parts.netloc}


def request(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One request; transport failures come back as ``httpx.HTTPError`` for the caller to classify."""
    target, extra = route(url)
    headers = dict(kwargs.pop("headers", None) or {})  # type: ignore[call-overload]
    headers.update(extra)
    return crm_http().request(method, target, headers=headers, **kwargs)  # type: ignore[arg-type]

"""The process's one HTTP client to the CRMs, and where requests go.

In AWS every request goes to the CRM's real host. A local stack sets ``LEADBRIDGE_CRM_ORIGIN_OVERRIDE`` to the
fake CRM server's origin: the request goes there instead, naming the real host in ``X-Original-Host``, so the
same code builds the same URLs in both places.

A request that belongs to a CRM budget names it (``budget=``), and the client's request hook takes the budget's
slot as the very last step before the request is sent: what is paced is the send itself, not some earlier point
of the caller's. A local stack also sets ``LEADBRIDGE_CRM_SEND_LOG``: the hook appends each send instant there,
so the limit tests judge the instants the product controls, apart from when the fake CRM saw them arrive.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx

if TYPE_CHECKING:
    from leadbridge.http.ratelimit import SharedLimiter

ORIGIN_OVERRIDE_ENV = "LEADBRIDGE_CRM_ORIGIN_OVERRIDE"
SEND_LOG_ENV = "LEADBRIDGE_CRM_SEND_LOG"
ORIGINAL_HOST_HEADER = "X-Original-Host"
TIMEOUT_ENV = "LEADBRIDGE_CRM_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 10.0
USER_AGENT = "leadbridge/1.0 (+https://github.com/leadbridge)"
BUDGET_EXTENSION = "leadbridge.budget"


def _take_the_budget(outgoing: httpx.Request) -> None:
    """The request hook: wait for the request's slot in its CRM budget, then let it go (and note when)."""
    budget: SharedLimiter | None = outgoing.extensions.get(BUDGET_EXTENSION)
    if budget is None:
        return
    sent_at = budget.acquire()
    log = os.environ.get(SEND_LOG_ENV)
    if log:
        host = outgoing.headers.get(ORIGINAL_HOST_HEADER) or outgoing.url.host
        line = json.dumps({"at": sent_at, "budget": budget.key, "host": host, "path": outgoing.url.path})
        with open(log, "a", encoding="utf-8") as sends:  # one short append: whole lines, whatever the process
            sends.write(line + "\n")


@cache
def crm_http() -> httpx.Client:
    seconds = float(os.environ.get(TIMEOUT_ENV, "") or DEFAULT_TIMEOUT_SECONDS)
    return httpx.Client(
        timeout=httpx.Timeout(seconds, connect=min(3.0, seconds)),
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        event_hooks={"request": [_take_the_budget]},
    )


def route(url: str) -> tuple[str, dict[str, str]]:
    """The URL to call and any extra headers, honouring the local override."""
    override = os.environ.get(ORIGIN_OVERRIDE_ENV, "").strip()
    if not override:
        return url, {}
    parts = urlsplit(url)
    target = urlsplit(override)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, "")), {ORIGINAL_HOST_HEADER: parts.netloc}


def request(method: str, url: str, *, budget: SharedLimiter | None = None, **kwargs: object) -> httpx.Response:
    """One request, sent in its turn of ``budget`` (the CRM account's shared budget) when one is given; transport
    failures come back as ``httpx.HTTPError`` for the caller to classify."""
    target, extra = route(url)
    headers = dict(kwargs.pop("headers", None) or {})  # type: ignore[call-overload]
    headers.update(extra)
    extensions = {BUDGET_EXTENSION: budget} if budget is not None else None
    return crm_http().request(method, target, headers=headers, extensions=extensions, **kwargs)  # type: ignore[arg-type]

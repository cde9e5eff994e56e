"""Bitrix24 REST for one portal, within its limits (reference/bitrix24.md §3-4).

- A leaky bucket per portal mirrors the portal's counter (2/s, burst 50; Enterprise 5/250), shared by every process
  (``SharedLimiter``), so the portal never has to answer ``503 QUERY_LIMIT_EXCEEDED``; if it does anyway (another app
  shares the counter), everyone treats the bucket as full and the call is retried after the drain.
- ``429 OPERATION_TIME_LIMIT`` waits for ``operating_reset_at`` (from the last answer's ``time`` block).
- ``expired_token`` / ``invalid_token`` / ``NO_AUTH_FOUND`` go through the token store, then one retry.
- ``batch``: up to 50 commands in one request; each command's error comes back in ``errors`` by key.
- The access token goes only to the portal: a ``client_endpoint`` from a token answer is used when it is https on
  the portal's own domain, never otherwise (a stored ``http://169.254.169.254/...`` must not get it).
- A renamed portal's old address answers REST with a redirect: one is followed, to an https ``/rest/`` address on a
  public host; the new address is kept for this client's later calls (``moved_to``).
- Refusals, direct or inside ``batch``, mean what ``refusals.py`` says; each answer's per-method ``operating``
  figure is kept, and a method near its budget is held off until its ``operating_reset_at``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from leadbridge.contract.integration import Integration
from leadbridge.crms.bitrix24.refusals import (
    OPERATING,
    TOKEN_ERRORS,
    OperatingTimes,
    error_code,
    is_portal_wide,
    refusal,
)
from leadbridge.crms.crm_values import without_lone_surrogates
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.http.client import request
from leadbridge.http.errors import AccessTokenRejected, BadRequest, CrmError, CrmUnavailable, RateLimited
from leadbridge.http.public_host import NonPublicHost, require_public
from leadbridge.http.ratelimit import SharedLimiter

MAX_BATCH_COMMANDS = 50
MAX_ATTEMPTS = 4
MAX_INLINE_WAIT_SECONDS = 10.0
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)  # key -> the command as sent
    portal: str = ""  # whose per-method operating figures apply
    operating: OperatingTimes = OPERATING  # the figures the client that made the call keeps

    def method(self, key: str) -> str:
        return self.commands.get(key, "").partition("?")[0].lower() or key

    def refusal(self, key: str, now: float | None = None) -> CrmError | None:
        """What the refusal of command ``key`` means (``refusals.py``), or None when it was not refused."""
        error = self.errors.get(key)
        if not isinstance(error, dict):
            return None
        method = self.method(key)
        return refusal(method, error, self.operating.reset_at(self.portal, method), time.time() if now is None else now)


def rest_base(integration: Integration, client_endpoint: str | None) -> str:
    """Where REST calls go: the token answer's ``client_endpoint`` if it is the portal's own https origin."""
    own = f"https://{integration.crm_domain.lower()}/rest/"
    if not client_endpoint:
        return own
    try:
        parts = urlsplit(client_endpoint)
        port = parts.port
    except ValueError:
        return own
    if parts.scheme != "https" or (parts.hostname or "") != integration.crm_domain.lower() or port not in {None, 443}:
        return own
    return client_endpoint if client_endpoint.endswith("/") else client_endpoint + "/"


def _as_map(value: Any) -> dict[str, Any]:
    # PHP serializes empty (or 0..n-keyed) maps as JSON arrays.
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


class BitrixClient:
    def __init__(
        self,
        integration: Integration,
        tokens: TokenProvider,
        limiter: SharedLimiter,
        operating: OperatingTimes = OPERATING,
    ) -> None:
        self.integration = integration
        self.tokens = tokens
        self.limiter = limiter
        self.operating = operating
        self.requests_made = 0
        self.operating_reset_at: float | None = None
        self.moved_to: str | None = None  # the portal's new address, when its old one redirected

    @property
    def portal(self) -> str:
        return self.integration.account_id or self.integration.crm_domain.lower()

    def batch(self, commands: dict[str, str], halt: bool = False) -> BatchResult:
        if len(commands) > MAX_BATCH_COMMANDS:
            raise ValueError(f"a batch takes at most {MAX_BATCH_COMMANDS} commands")
        methods = sorted({command.partition("?")[0].lower() for command in commands.values()})
        self._hold_off(methods)
        body = self.call("batch", {"halt": 1 if halt else 0, "cmd": commands})
        outer = _as_map(body)
        for key, timing in _as_map(outer.get("result_time")).items():
            if isinstance(timing, dict) and key in commands:
                self.operating.record(self.portal, commands[key].partition("?")[0].lower(), timing)
        return BatchResult(
            results=_as_map(outer.get("result")),
            errors=_as_map(outer.get("result_error")),
            commands=dict(commands),
            portal=self.portal,
            operating=self.operating,
        )

    def bound_events(self) -> list[dict[str, Any]]:
        """The application's event handlers on the portal (``event.get``: event, handler, ...)."""
        return [h for h in _as_map(self.call("event.get", {})).values() if isinstance(h, dict)]

    def bind_event(self, event: str, handler: str) -> None:
        self.call("event.bind", {"event": event, "handler": handler})

    def unbind_event(self, event: str, handler: str) -> None:
        self.call("event.unbind", {"event": event, "handler": handler})

    def probe(self) -> None:
        """One cheap call that any installed application may make: does the portal answer REST at all?"""
        self.call("app.info", {})

    def _hold_off(self, methods: list[str]) -> None:
        """A method near its execution-time budget waits for its reset rather than meet the portal's block."""
        wait = self.operating.wait_before(self.portal, methods)
        if wait > 0:
            raise RateLimited("Bitrix24 method near its operating-time limit", retry_after=wait, code="operating_soon")

    def call(self, method: str, params: dict[str, Any]) -> Any:
        return self._answer(method, params)["result"]

    def listing(self, method: str, params: dict[str, Any], max_pages: int) -> tuple[list[Any], bool]:
        """Every row of a list method, page by page (``start`` = the answer's ``next``, 50 a page), up to
        ``max_pages``; and whether the list ended within them."""
        rows: list[Any] = []
        start: int | None = None
        for _ in range(max_pages):
            data = self._answer(method, params if start is None else {**params, "start": start})
            result = data["result"]
            rows.extend(result.values() if isinstance(result, dict) else result if isinstance(result, list) else [])
            following = data.get("next")
            if not isinstance(following, int) or isinstance(following, bool) or following <= (start or 0):
                return rows, True
            start = following
        return rows, False

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method != "batch":
            self._hold_off([method.lower()])
        token = self.tokens.get(self.integration)
        retried_token = False
        followed = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.requests_made += 1
            base = self._base(token.extra.get("client_endpoint"))
            try:
                response = request("POST", base + method, budget=self.limiter, json={**params, "auth": token.value})
            except httpx.HTTPError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise CrmUnavailable(f"Bitrix24 unreachable: {type(exc).__name__}") from exc
                continue
            if response.status_code in REDIRECTS and not followed:
                self.moved_to = _redirected_portal(response.headers.get("location", ""))
                followed = True
                continue
            data = _json(response)
            timing = data.get("time") if isinstance(data.get("time"), dict) else None
            if timing and isinstance(timing.get("operating_reset_at"), int | float):
                self.operating_reset_at = float(timing["operating_reset_at"])
                if method != "batch":  # the outer batch is not billed; its commands' figures come in result_time
                    self.operating.record(self.portal, method.lower(), timing)
            if response.status_code == 200 and "result" in data:
                return data
            error = str(data.get("error") or "").lower()
            if error in TOKEN_ERRORS or response.status_code == 401:
                if retried_token:
                    raise AccessTokenRejected("Bitrix24 rejected a freshly refreshed token", status=401, code=error)
                token = self.tokens.after_unauthorized(self.integration, token.version)
                retried_token = True
                continue
            if error == "query_limit_exceeded":
                wait = self.limiter.rate.interval + 1.0
                self.limiter.back_off(wait)
                if attempt == MAX_ATTEMPTS:
                    raise RateLimited("Bitrix24 QUERY_LIMIT_EXCEEDED", retry_after=wait, status=503, code=error)
                continue
            if error == "operation_time_limit":
                wait = max(1.0, (self.operating_reset_at or time.time() + 60) - time.time())
                if wait > MAX_INLINE_WAIT_SECONDS or attempt == MAX_ATTEMPTS:
                    raise RateLimited("Bitrix24 OPERATION_TIME_LIMIT", retry_after=wait, status=429, code=error)
                time.sleep(wait)
                continue
            if is_portal_wide(*error_code(data)):
                raise refusal(method, data, self.operating_reset_at, time.time())
            if response.status_code in REDIRECTS:
                raise CrmUnavailable("Bitrix24 redirected twice", status=response.status_code)
            if response.status_code >= 500 or response.status_code == 429:
                if attempt == MAX_ATTEMPTS:
                    raise CrmUnavailable("Bitrix24 server error", status=response.status_code, code=error)
                time.sleep(0.5 * attempt)
                continue
            if error or data.get("error_description"):
                raise refusal(method, data, self.operating_reset_at, time.time())
            raise BadRequest(
                f"Bitrix24 {method} refused ({error or response.status_code})", status=response.status_code, code=error
            )
        raise CrmUnavailable("Bitrix24: attempts exhausted")

    def _base(self, client_endpoint: str | None) -> str:
        if self.moved_to is not None:
            return f"https://{self.moved_to}/rest/"
        return rest_base(self.integration, client_endpoint)


def _redirected_portal(location: str) -> str:
    """The portal host a REST redirect points to, if it may get the token: https, ``/rest/``, a public host."""
    try:
        parts = urlsplit(location)
        port = parts.port
    except ValueError:
        raise CrmUnavailable("Bitrix24 redirected to an unreadable address") from None
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or port not in {None, 443} or not parts.path.startswith("/rest/") or not host:
        raise CrmUnavailable("Bitrix24 redirected outside a portal's REST address")
    try:
        require_public(host)
    except NonPublicHost as exc:
        raise CrmUnavailable(f"Bitrix24 redirected to a non-public host ({host})") from exc
    return host


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = without_lone_surrogates(response.json())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

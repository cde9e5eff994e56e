"""Bitrix24 REST for one portal, within its limits (reference/bitrix24.md §3-4).

- A leaky bucket per portal mirrors the portal's counter (2/s, burst 50; Enterprise 5/250), shared by every process
  (``SharedLimiter``), so the portal never has to answer ``503 QUERY_LIMIT_EXCEEDED``; if it does anyway (another app
  shares the counter), everyone treats the bucket as full and the call is retried after the drain.
- ``429 OPERATION_TIME_LIMIT`` waits for ``operating_reset_at`` (from the last answer's ``time`` block).
- ``expired_token`` / ``invalid_token`` / ``NO_AUTH_FOUND`` go through the token store, then one retry.
- ``batch``: up to 50 commands in one request; each command's error comes back in ``errors`` by key.
- The access token goes only to the portal: a ``client_endpoint`` from a token answer is used when it is https on
  the portal's own domain, never otherwise (a stored ``http://169.254.169.254/...`` must not get it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from leadbridge.http.client import request
from leadbridge.http.errors import AccessTokenRejected, BadRequest, CrmUnavailable, NotFound, RateLimited
from leadbridge.http.ratelimit import SharedLimiter
from leadbridge.integration import Integration
from leadbridge.oauth.token_provider import TokenProvider

MAX_BATCH_COMMANDS = 50
MAX_ATTEMPTS = 4
MAX_INLINE_WAIT_SECONDS = 10.0
TOKEN_ERRORS = frozenset({"expired_token", "invalid_token", "no_auth_found"})


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)


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
    def __init__(self, integration: Integration, tokens: TokenProvider, limiter: SharedLimiter) -> None:
        self.integration = integration
        self.tokens = tokens
        self.limiter = limiter
        self.requests_made = 0
        self.operating_reset_at: float | None = None

    def batch(self, commands: dict[str, str], halt: bool = False) -> BatchResult:
        if len(commands) > MAX_BATCH_COMMANDS:
            raise ValueError(f"a batch takes at most {MAX_BATCH_COMMANDS} commands")
        body = self.call("batch", {"halt": 1 if halt else 0, "cmd": commands})
        outer = _as_map(body)
        return BatchResult(results=_as_map(outer.get("result")), errors=_as_map(outer.get("result_error")))

    def call(self, method: str, params: dict[str, Any]) -> Any:
        token = self.tokens.get(self.integration)
        retried_token = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.requests_made += 1
            base = rest_base(self.integration, token.extra.get("client_endpoint"))
            try:
                response = request("POST", base + method, budget=self.limiter, json={**params, "auth": token.value})
            except httpx.HTTPError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise CrmUnavailable(f"Bitrix24 unreachable: {type(exc).__name__}") from exc
                continue
            data = _json(response)
            timing = data.get("time") if isinstance(data.get("time"), dict) else None
            if timing and isinstance(timing.get("operating_reset_at"), int | float):
                self.operating_reset_at = float(timing["operating_reset_at"])
            if response.status_code == 200 and "result" in data:
                return data["result"]
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
            if response.status_code >= 500 or response.status_code == 429:
                if attempt == MAX_ATTEMPTS:
                    raise CrmUnavailable("Bitrix24 server error", status=response.status_code, code=error)
                time.sleep(0.5 * attempt)
                continue
            if str(data.get("error_description", "")).lower().startswith("not found"):
                raise NotFound(f"Bitrix24 {method}: not found", status=response.status_code)
            raise BadRequest(
                f"Bitrix24 {method} refused ({error or response.status_code})", status=response.status_code, code=error
            )
        raise CrmUnavailable("Bitrix24: attempts exhausted")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

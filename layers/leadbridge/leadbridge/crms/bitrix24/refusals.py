"""What a Bitrix24 refusal means, whether it came as the HTTP answer or as one command's entry in ``batch``.

A ``batch`` answers 200 and puts each refused command in ``result_error`` (settings/how-to-call-rest-api/batch.md);
the codes are the same as for a direct call (_includes/system-errors.md). What each one asks of us:

- limits (``OPERATION_TIME_LIMIT``, ``QUERY_LIMIT_EXCEEDED``): wait and retry, never the DLQ;
- the whole portal refusing (``ACCESS_DENIED`` "REST API is available only on commercial plans",
  ``INVALID_CREDENTIALS``, ``user_access_error``, ``OVERLOAD_LIMIT``, ``PORTAL_DELETED``): the integration is
  ``blocked``, its events wait, and the scheduled probe resumes it when the portal answers again;
- this read refused (``ACCESS_DENIED`` / "Access denied." on an entity, ``insufficient_scope``): the grant lacks
  rights, which only the portal's admin can give (``insufficient_rights``);
- "Not found": the entity is gone; a server fault or a token error inside a batch: retried;
- anything else (a malformed call, a method not allowed in batch): our mistake, which no wait mends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from leadbridge.http.errors import (
    AccessTokenRejected,
    AccountBlocked,
    BadRequest,
    CrmError,
    CrmUnavailable,
    InsufficientRights,
    NotFound,
    RateLimited,
)

PORTAL_WIDE = frozenset({"invalid_credentials", "user_access_error", "overload_limit", "portal_deleted"})
SCOPE_OR_RIGHTS = frozenset({"access_denied", "insufficient_scope"})
SERVER_FAULTS = frozenset({"internal_server_error", "error_unexpected_answer"})
TOKEN_ERRORS = frozenset({"expired_token", "invalid_token", "no_auth_found"})
COMMERCIAL_PLANS_ONLY = "only on commercial plans"
DEFAULT_LIMIT_WAIT_SECONDS = 60.0
QUERY_LIMIT_WAIT_SECONDS = 2.0


def error_code(error: Mapping[str, object]) -> tuple[str, str]:
    """(lower-case code, description) of a Bitrix24 error body or ``result_error`` entry."""
    return str(error.get("error") or "").lower()[:80], str(error.get("error_description") or "")[:200]


def is_portal_wide(code: str, description: str) -> bool:
    return code in PORTAL_WIDE or (code == "access_denied" and COMMERCIAL_PLANS_ONLY in description.lower())


def is_rights(code: str, description: str) -> bool:
    if is_portal_wide(code, description):
        return False
    return code in SCOPE_OR_RIGHTS or description.lower().startswith("access denied")


def refusal(method: str, error: Mapping[str, object], reset_at: float | None, now: float) -> CrmError:
    """The exception a refused call of ``method`` stands for. ``reset_at``: the method's ``operating_reset_at``
    as last seen (the first retry after ``OPERATION_TIME_LIMIT`` waits for it, settings/performance/limits.md)."""
    code, description = error_code(error)
    if code == "operation_time_limit":
        wait = (reset_at - now) if reset_at and reset_at > now else DEFAULT_LIMIT_WAIT_SECONDS
        return RateLimited(f"Bitrix24 {method}: OPERATION_TIME_LIMIT", retry_after=max(1.0, wait), code=code)
    if code == "query_limit_exceeded":
        return RateLimited(f"Bitrix24 {method}: QUERY_LIMIT_EXCEEDED", retry_after=QUERY_LIMIT_WAIT_SECONDS, code=code)
    if code in SERVER_FAULTS:
        return CrmUnavailable(f"Bitrix24 {method}: {code.upper()}", code=code)
    if code in TOKEN_ERRORS:
        return AccessTokenRejected(f"Bitrix24 {method}: {code}", code=code)
    if is_portal_wide(code, description):
        return AccountBlocked(f"Bitrix24 refuses every call ({code.upper()})", code=code)
    if is_rights(code, description):
        label = code.upper() if code else "ACCESS_DENIED"
        return InsufficientRights(f"Bitrix24 refused {method} ({label})", refused=method, code=code or "access_denied")
    if description.lower().startswith("not found"):
        return NotFound(f"Bitrix24 {method}: not found", code=code)
    return BadRequest(f"Bitrix24 {method} refused ({code or description[:60]})", code=code)


@dataclass
class _Spent:
    operating: float
    reset_at: float


class OperatingTimes:
    """The per-method ``operating`` figure each answer reports (seconds of execution billed to this application over
    the last 10 minutes), per portal, as this process last saw it. Before the figure reaches the limit the client
    stops calling that method until ``operating_reset_at`` instead of being blocked by the portal."""

    def __init__(self, slow_down_at: float) -> None:
        self.slow_down_at = slow_down_at
        self._lock = threading.Lock()
        self._spent: dict[tuple[str, str], _Spent] = {}

    def record(self, portal: str, method: str, timing: Mapping[str, object]) -> None:
        operating, reset_at = timing.get("operating"), timing.get("operating_reset_at")
        if not isinstance(operating, int | float) or not isinstance(reset_at, int | float):
            return
        with self._lock:
            self._spent[(portal, method)] = _Spent(float(operating), float(reset_at))

    def reset_at(self, portal: str, method: str) -> float | None:
        with self._lock:
            spent = self._spent.get((portal, method))
        return spent.reset_at if spent else None

    def wait_before(self, portal: str, methods: list[str], now: float | None = None) -> float:
        """Seconds to hold off before calling ``methods`` (0 when every one is under the slow-down mark)."""
        now = time.time() if now is None else now
        wait = 0.0
        with self._lock:
            for method in methods:
                spent = self._spent.get((portal, method))
                if spent is None or spent.reset_at <= now:
                    continue
                if spent.operating >= self.slow_down_at:
                    wait = max(wait, spent.reset_at - now)
        return wait


OPERATING_LIMIT_SECONDS = 480.0  # the cloud's per-method budget per 10 minutes (settings/performance/limits.md)
OPERATING = OperatingTimes(slow_down_at=OPERATING_LIMIT_SECONDS * 0.8)

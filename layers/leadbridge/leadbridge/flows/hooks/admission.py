"""Per-integration admission at the webhooks: one account's storm cannot take the stack from the others.

Every stack's tenant shares the hook functions, the inbox, the worker and the scheduled jobs; a CRM that replays a
mass import, or a loop in a customer's automation, can post thousands of webhooks a minute for one integration. A
delivery is admitted when it is quiet in this execution environment (``quiet`` deliveries an integration may have
per window here without asking anyone, so the common case costs no AWS request), or when the integration's shared
budget in the limits table has room (``rate`` deliveries a second over every environment, taken in chunks so a
storm costs one write per ``chunk`` deliveries). Beyond it the delivery is refused with 429, but only while the CRM
will still deliver it later:

- amoCRM retries a failed delivery (after 5, 15, 15 minutes and an hour) and switches a hook off after more than
  100 failed answers in 2 hours: an integration is refused at most ``refusals`` times in 2 hours, then admitted;
- Bitrix24 never retries: a refused ONCRMLEADADD / ONCRMDEALADD is found by the integration's next sweep (its leads
  and deals by ``DATE_CREATE``, every 15 minutes while the portal has traffic);
- digital-pipeline and Salesbot deliveries come once and are never refused here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

REFUSAL_WINDOW_SECONDS = 2 * 3600
MAX_TRACKED = 10_000  # integrations this environment remembers; past it, it forgets them all (all quiet again)


class SharedBudgets(Protocol):
    def take(self, key: str, window: int, count: int, cap: int, new_window: bool = False) -> bool: ...


class TenantAdmission:
    def __init__(
        self,
        budgets: SharedBudgets,
        rate: float,
        window_seconds: int = 10,
        quiet: int = 5,
        chunk: int = 10,
        refusals: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budgets = budgets
        self.cap = max(chunk, int(rate * window_seconds))
        self.window_seconds = window_seconds
        self.quiet = quiet
        self.chunk = chunk
        self.refusals = refusals
        self.clock = clock
        # integration -> [window, deliveries here, granted and unused, 1 once the shared budget said it is spent,
        # 1 once this environment took from the window]
        self._seen: dict[str, list[int]] = {}
        self._forgiven: dict[str, int] = {}
        self._lock = threading.Lock()  # integration -> the 2-hour window whose refusals are all used

    def admit(self, integration_id: str, may_refuse: bool = True) -> bool:
        # Lambda runs one request at a time in an environment; a server that runs them in threads (the local stack)
        # must not let two deliveries each take a chunk that one would have covered.
        with self._lock:
            return self._admit(integration_id, may_refuse)

    def _admit(self, integration_id: str, may_refuse: bool) -> bool:
        now = self.clock()
        window = int(now // self.window_seconds)
        seen = self._seen.get(integration_id)
        if seen is None or seen[0] != window:
            if len(self._seen) >= MAX_TRACKED:
                self._seen.clear()
            seen = self._seen[integration_id] = [window, 0, 0, 0, 0]
        seen[1] += 1
        if seen[1] <= self.quiet:
            return True
        if seen[2] > 0:
            seen[2] -= 1
            return True
        if not seen[3]:  # asked once a window at most after a no: a storm's refusals cost no budget writes
            new_window = not seen[4]
            seen[4] = 1
            if self.budgets.take(f"hook:{integration_id}", window, self.chunk, self.cap, new_window):
                seen[2] = self.chunk - 1
                return True
            seen[3] = 1
        refusal_window = int(now // REFUSAL_WINDOW_SECONDS)
        if not may_refuse or self._forgiven.get(integration_id) == refusal_window:
            return True
        if self.budgets.take(f"hook-refused:{integration_id}", refusal_window, 1, self.refusals):
            return False
        if len(self._forgiven) >= MAX_TRACKED:
            self._forgiven.clear()
        self._forgiven[integration_id] = refusal_window
        return True

    @property
    def retry_after(self) -> int:
        return self.window_seconds


def tenant_admission(budgets: SharedBudgets | None, webhooks_per_second: int) -> Callable[[str], bool] | None:
    """The hooks' admission, or None when no shared budget is configured (every delivery admitted)."""
    return TenantAdmission(budgets, webhooks_per_second).admit if budgets is not None else None

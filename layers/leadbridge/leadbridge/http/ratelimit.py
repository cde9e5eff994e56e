"""Client-side rate limits, so the CRM never has to refuse us.

FIFO message groups give one worker per integration at a time, so a limiter in the process is enough.
``WindowLimiter`` keeps any 1-second window at the CRM to the limit (amoCRM: 7 per integration). ``LeakyBucket``
mirrors Bitrix24's counter (it grows by one per request, drains ``drain_per_second``, refuses above ``capacity``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class WindowLimiter:
    """At most ``limit`` requests *arriving* at the CRM in any ``window`` seconds, whatever the network's jitter.

    A request arrives somewhere between its start and its response. So request n+limit starts only once ``window``
    has passed since request n's response: their arrivals are then at least ``window`` apart, however late the
    earlier one travelled. Callers use it one at a time per integration (FIFO message groups make that so) and
    call ``done()`` when each request's answer (or failure) is in.
    """

    def __init__(
        self,
        limit: int,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = 0.002,
    ) -> None:
        self.limit = limit
        self.window = window + margin
        self.clock = clock
        self.sleep = sleep
        self._done: deque[float] = deque(maxlen=limit)
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until the next request may start; returns the seconds waited."""
        with self._lock:
            now = self.clock()
            start = max(now, self._blocked_until)
            if len(self._done) == self.limit:
                start = max(start, self._done[0] + self.window)
        wait = start - now
        if wait > 0:
            self.sleep(wait)
        return max(0.0, wait)

    def done(self) -> None:
        with self._lock:
            self._done.append(self.clock())

    def back_off(self, seconds: float) -> None:
        """The CRM refused: no request before ``seconds`` from now."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self.clock() + seconds)


class LeakyBucket:
    """Bitrix24's request counter as we expect the portal to see it."""

    def __init__(
        self,
        capacity: int,
        drain_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        headroom: int = 2,
    ) -> None:
        self.capacity = capacity - headroom  # other apps on the portal share its counter; keep a little room
        self.drain = drain_per_second
        self.clock = clock
        self.sleep = sleep
        self._level = 0.0
        self._at = clock()
        self._lock = threading.Lock()

    def level(self) -> float:
        with self._lock:
            self._leak()
            return self._level

    def acquire(self) -> float:
        waited = 0.0
        while True:
            with self._lock:
                self._leak()
                if self._level + 1 <= self.capacity:
                    self._level += 1
                    return waited
                wait = (self._level + 1 - self.capacity) / self.drain
            self.sleep(wait)
            waited += wait

    def back_off(self, seconds: float) -> None:
        """The portal refused (QUERY_LIMIT_EXCEEDED): treat the bucket as full."""
        with self._lock:
            self._leak()
            self._level = max(self._level, self.capacity + seconds * self.drain)

    def _leak(self) -> None:
        now = self.clock()
        self._level = max(0.0, self._level - (now - self._at) * self.drain)
        self._at = now


def backoff_seconds(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff for attempt 1, 2, 3...: base, 2*base, 4*base..., capped. Deterministic: jitter is
    pointless when one worker per integration retries."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))

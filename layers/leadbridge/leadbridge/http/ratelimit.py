"""CRM request budgets shared by every process that calls the CRM, so the CRM never has to refuse us.

SQS FIFO keeps one batch per integration in flight, not one execution environment per integration: consecutive
batches land on different environments, and the sweep, the refresher and the OAuth callback call the same CRM at
the same time. So the budget is state in DynamoDB (``store.limits``), taken by one conditional write per request.

The rule is GCRA (the generic cell rate algorithm, a leaky bucket kept as one number): a "theoretical arrival time"
``tat`` per budget; a request may start at ``tat - tolerance`` and moves ``tat`` one ``interval`` on.
- amoCRM, 7 requests/s per integration (reference/amocrm.md §2.4): requests spaced ``1/6`` s, no burst. A request
  that would start late (a slow wake-up, a busy machine) gives its slot up and takes a new one, so that the spacing
  holds between the requests' real starts, and no 1-second window at the CRM sees an 8th arrival.
- Bitrix24, a leaky bucket of 50 draining 2/s per portal (Enterprise 250 and 5/s): ``interval = 1/drain``,
  ``tolerance`` = (capacity - headroom - 1) intervals: a burst up to the bucket, then the drain rate.
A 429 / 503 seen by anyone pushes the shared ``tat`` on (``back_off``): every process slows down. If the state
cannot be read or written, the caller waits and tries again, and in the end fails the request: never unmetered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from leadbridge.contract.integration import Integration
from leadbridge.http.errors import CrmUnavailable

LATE_START_SECONDS = 0.03  # later than this after its slot, a spaced request takes a new slot (7/6 s - 1 s: 167 ms)
# What the amoCRM spacing leaves for the network: 8 requests sent 1/6 s apart (each at most LATE_START_SECONDS after
# its slot) span at least 7/6 s - 30 ms = 1.137 s, so their arrivals stay out of one 1-second window while two
# requests' send-to-arrival times differ by less than 137 ms. The local checks widen the CRM's window by this much.
ARRIVAL_JITTER_SECONDS = 0.1
# How far ahead of now a spaced request's slot may be reserved: the longest reservation (a write to the store) this
# process plans for. Past it the store is failing more than it is slow, and the request takes its chances.
MAX_LEAD_SECONDS = 1.0
SLOWING_MARGIN = 2.0  # after a slower reservation, the lead is this many times its latency
LEAD_DECAY = 0.5  # after a faster reservation, the lead comes down by half the difference, not all at once
STATE_RETRY_SECONDS = 15.0  # how long to wait for the budget's state before failing the request (not skipping it)


@dataclass(frozen=True, slots=True)
class Rate:
    interval: float  # seconds between requests at the sustained rate
    tolerance: float = 0.0  # how far ahead of the sustained rate a burst may run, in seconds

    @classmethod
    def leaky_bucket(cls, capacity: int, drain_per_second: float, headroom: int = 2) -> Rate:
        """Bitrix24's counter: ``capacity`` requests, draining ``drain_per_second``; other apps share it, so keep
        ``headroom``."""
        interval = 1.0 / drain_per_second
        return cls(interval=interval, tolerance=max(0, capacity - headroom - 1) * interval)


AMOCRM_RATE = Rate(interval=1 / 6.0)  # under the 7/s limit, with room for the jitter between a start and its arrival
BITRIX24_RATE = Rate.leaky_bucket(50, 2.0)
BITRIX24_ENTERPRISE_RATE = Rate.leaky_bucket(250, 5.0)


def reserve(tat: float, now: float, rate: Rate) -> tuple[float, float]:
    """GCRA for one request: (when it may start, the new theoretical arrival time)."""
    current = max(tat, now)
    start = max(now, current - rate.tolerance)
    return start, current + rate.interval


class LimitState(Protocol):
    """A budget's ``tat`` in a shared store, changed only by conditional writes.

    GCRA's step is ``tat = max(tat, now) + interval``: a busy budget (``tat >= now``) only ever adds the interval,
    which the store can do in one conditional write without anyone knowing the value first; an idle one restarts
    from now. So a request costs one write, and a second only when the budget changed between busy and idle."""

    def advance(self, key: str, interval: float, now: float) -> float | None:
        """If the stored tat is at least ``now``: add ``interval``; the new tat, else None (idle, or none yet)."""
        ...

    def restart(self, key: str, now: float, new: float) -> float | None:
        """If no tat is stored or it is before ``now``: set ``new``; None on success, else the tat found."""
        ...

    def raise_to(self, key: str, value: float) -> None:
        """Set ``value`` if the stored one is lower (or missing)."""
        ...


class StateUnavailable(Exception):
    """The shared store did not answer."""


class StoreLatency:
    """How long this process's budget writes take lately: how far ahead a spaced slot is reserved (``_lead``).

    One store serves all of a process's budgets, so one figure: a budget this process has not used yet (a Lambda
    environment meets most accounts for the first time) starts from what the others learned, instead of from 0 and a
    late start, which costs a second write. A faster write lowers it by half the difference, so one quick write
    after slow ones does not make the next request late again. A write slower than the lead says the store is
    slowing down (several of this process's requests reserving at once, a throttled write the SDK retried): the lead
    becomes twice that write's time, so the retry, likely as slow, comes back before its slot instead of writing
    once more."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def learn(self, step_seconds: float) -> None:
        if step_seconds > self.seconds:
            self.seconds = min(step_seconds * SLOWING_MARGIN, MAX_LEAD_SECONDS)
        else:
            self.seconds -= (self.seconds - step_seconds) * LEAD_DECAY


class SharedLimiter:
    """One budget (one amoCRM integration, one Bitrix24 portal), shared through ``LimitState``."""

    def __init__(
        self,
        state: LimitState,
        key: str,
        rate: Rate,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        latency: StoreLatency | None = None,
    ) -> None:
        self.state = state
        self.key = key
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._known: float | None = None  # the last tat this process saw; a wrong guess costs one more write
        self.latency = latency or StoreLatency()  # shared by the process's budgets (``Budgets``)
        self.state_calls = 0

    def acquire(self) -> float:
        """Reserve the next slot and wait for it; returns the instant the request may go (the clock reading that
        was checked against its slot), for the HTTP client to record as the send instant.

        A spaced budget (amoCRM) must hold between the requests' real starts: a process that wakes up too late for
        its slot (a busy machine) does not use it, which would crowd the next process's slot, but takes a new one.
        """
        while True:
            start = self._reserve()
            wait = start - self.clock()
            if wait > 0:
                self.sleep(wait)
            now = self.clock()
            if self.rate.tolerance > 0 or now - start <= LATE_START_SECONDS:
                return now

    def _reserve(self) -> float:
        deadline = self.clock() + STATE_RETRY_SECONDS
        failures = 0
        while True:
            now = self.clock()
            try:
                start = self._one_step(now + self._lead())
                self.latency.learn(self.clock() - now)
            except StateUnavailable as exc:
                failures += 1
                if self.clock() > deadline:
                    raise CrmUnavailable("the CRM's shared request budget cannot be read; request not sent") from exc
                self.sleep(min(2.0, 0.1 * 2**failures))
                continue
            if start is not None:
                return start

    def _lead(self) -> float:
        """How far ahead of now a spaced budget's slot is reserved. A slot reserved for now is already behind by the
        time the write returns, and a start more than ``LATE_START_SECONDS`` after its slot gives the slot up for a
        new one: with a store slower than that (a busy table, a throttled write the SDK retried), every attempt came
        back late and wrote again, as long as the store stayed slow. Reserved as far ahead as this process's
        reservations take, the request waits out the rest of the lead instead. A burst budget (Bitrix24) does not hold
        starts to their slots, so it reserves for now."""
        return self.latency.seconds if self.rate.tolerance == 0 else 0.0

    def _one_step(self, now: float) -> float | None:
        """One or two conditional writes: the one the budget's last known state calls for, then the other one if
        the budget turned (busy <-> idle) meanwhile. The start of the request's slot, or None to try again."""
        busy_first = self._known is not None and self._known >= now
        for busy in (busy_first, not busy_first):
            self.state_calls += 1
            if busy:
                new_tat = self.state.advance(self.key, self.rate.interval, now)
                if new_tat is not None:
                    self._known = new_tat
                    return max(now, new_tat - self.rate.interval - self.rate.tolerance)
            else:
                start, new_tat = reserve(0.0, now, self.rate)
                found = self.state.restart(self.key, now, new_tat)
                if found is None:
                    self._known = new_tat
                    return start
                self._known = found
        return None

    def back_off(self, seconds: float) -> None:
        """The CRM refused: nobody's next request before ``seconds`` from now."""
        target = self.clock() + seconds + self.rate.tolerance
        try:
            self.state_calls += 1
            self.state.raise_to(self.key, target)
        except StateUnavailable:
            self._known = None  # the next acquire learns the state; backing off is advice, the budget still holds
            return
        self._known = target  # a guess: if someone moved it further, the next write learns the real value


class Budgets:
    """Each process's limiters, one per budget: an amoCRM account, a Bitrix24 portal."""

    def __init__(self, state: LimitState) -> None:
        self.state = state
        self.latency = StoreLatency()  # one store for all of them
        self._limiters: dict[str, SharedLimiter] = {}

    def for_integration(self, integration: Integration) -> SharedLimiter:
        # The domain: known before the account id is (the OAuth callback), the same in every function.
        account = integration.crm_domain.lower()
        if integration.crm == "amocrm":
            key, rate = f"amocrm:{account}", AMOCRM_RATE
        else:
            key = f"bitrix24:{account}"
            rate = BITRIX24_ENTERPRISE_RATE if integration.bitrix_enterprise else BITRIX24_RATE
        limiter = self._limiters.get(key)
        if limiter is None or limiter.rate != rate:
            limiter = self._limiters[key] = SharedLimiter(self.state, key, rate, latency=self.latency)
        return limiter

    def for_backfill(self, integration: Integration, share: float) -> SharedLimiter:
        """A second budget for a backfill: ``share`` of the CRM's rate, on top of (not instead of) the CRM's own
        budget, so a backfill never takes more than that share and live events keep the rest."""
        crm_budget = self.for_integration(integration)
        key = f"backfill:{crm_budget.key}"
        interval = crm_budget.rate.interval / max(0.01, min(1.0, share))
        rate = Rate(interval=interval, tolerance=interval)  # paced on average; a late start keeps its slot
        limiter = self._limiters.get(key)
        if limiter is None or limiter.rate != rate:
            limiter = self._limiters[key] = SharedLimiter(self.state, key, rate, latency=self.latency)
        return limiter

    @property
    def state_calls(self) -> int:
        return sum(limiter.state_calls for limiter in self._limiters.values())


def backoff_seconds(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff for attempt 1, 2, 3...: base, 2*base, 4*base..., capped."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


class OncePer:
    """At most once per ``seconds`` per key in this process: for writes that only say something still happens (a
    status stamp), where the first of a burst tells all. Past ``max_keys`` keys it forgets them all (each is due
    again), so it never grows without bound."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.seconds = seconds
        self.clock = clock
        self.max_keys = max_keys
        self._at: dict[str, float] = {}

    def due(self, key: str) -> bool:
        """Whether ``key``'s last time is ``seconds`` old or more (then now is its last time)."""
        now = self.clock()
        last = self._at.get(key)
        if last is not None and now - last < self.seconds:
            return False
        if len(self._at) >= self.max_keys:
            self._at.clear()
        self._at[key] = now
        return True

    def forget(self, key: str) -> None:
        """``key`` is due at once."""
        self._at.pop(key, None)

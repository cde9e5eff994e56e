"""GCRA, the shared request budget's rule: spacing, bursts, back-off, and what a lost race or an unreachable store
does. The state here is in memory; tests/integration/test_shared_limits.py runs it on DynamoDB across processes."""

from __future__ import annotations

import itertools

import pytest

from leadbridge.contract.integration import Integration
from leadbridge.http.errors import CrmUnavailable
from leadbridge.http.ratelimit import (
    AMOCRM_RATE,
    BITRIX24_RATE,
    LATE_START_SECONDS,
    Budgets,
    Rate,
    SharedLimiter,
    StateUnavailable,
    StoreLatency,
    backoff_seconds,
    reserve,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class MemoryState:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.fail_next = 0

    def _maybe_fail(self) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise StateUnavailable("down")

    def advance(self, key: str, interval: float, now: float) -> float | None:
        self._maybe_fail()
        current = self.values.get(key)
        if current is None or current < now:
            return None
        self.values[key] = current + interval
        return self.values[key]

    def restart(self, key: str, now: float, new: float) -> float | None:
        self._maybe_fail()
        current = self.values.get(key)
        if current is not None and current >= now:
            return current
        self.values[key] = new
        return None

    def raise_to(self, key: str, value: float) -> None:
        self.values[key] = max(self.values.get(key, 0.0), value)


def starts(limiter: SharedLimiter, clock: Clock, n: int) -> list[float]:
    out = []
    for _ in range(n):
        limiter.acquire()
        out.append(round(clock.now, 6))
    return out


def test_reserve_spaces_requests_and_allows_the_tolerance_as_a_burst() -> None:
    assert reserve(0.0, 10.0, Rate(1.0)) == (10.0, 11.0)
    assert reserve(11.0, 10.0, Rate(1.0)) == (11.0, 12.0)
    assert reserve(11.0, 10.0, Rate(1.0, tolerance=2.0)) == (10.0, 12.0)


def test_amocrm_never_more_than_seven_starts_in_any_second() -> None:
    clock = Clock()
    limiter = SharedLimiter(MemoryState(), "amocrm:1", AMOCRM_RATE, clock=clock, sleep=clock.sleep)
    times = starts(limiter, clock, 50)
    for i in range(len(times) - 7):
        assert times[i + 7] - times[i] >= 1.0


def test_bitrix24_bursts_to_the_bucket_then_drains_at_two_per_second() -> None:
    clock = Clock()
    limiter = SharedLimiter(MemoryState(), "bitrix24:m", BITRIX24_RATE, clock=clock, sleep=clock.sleep)
    times = starts(limiter, clock, 60)
    assert times[47] == times[0]  # 48 at once: the bucket of 50 less 2 for other apps
    assert times[48] > times[0]
    assert times[59] - times[48] == pytest.approx(11 * 0.5)


def test_two_processes_share_one_budget() -> None:
    clock, state = Clock(), MemoryState()
    first = SharedLimiter(state, "amocrm:1", AMOCRM_RATE, clock=clock, sleep=clock.sleep)
    second = SharedLimiter(state, "amocrm:1", AMOCRM_RATE, clock=clock, sleep=clock.sleep)
    times = []
    for i in range(14):
        (first if i % 2 else second).acquire()
        times.append(clock.now)
    for i in range(len(times) - 7):
        assert times[i + 7] - times[i] >= 1.0
    # A busy budget only adds its interval: one conditional write a request, whoever wrote last (each process
    # pays one more the first time, learning the budget is busy).
    assert first.state_calls + second.state_calls <= 14 + 2


def test_a_budget_turning_idle_costs_one_more_write_never_a_skipped_wait() -> None:
    clock, state = Clock(), MemoryState()
    limiter = SharedLimiter(state, "amocrm:1", AMOCRM_RATE, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.acquire()  # busy: one write
    calls = limiter.state_calls
    clock.now += 60  # idle meanwhile: what it last saw is past, so it restarts the budget at once
    before = clock.now
    assert limiter.acquire() == before
    assert limiter.state_calls - calls == 1
    other = SharedLimiter(state, "amocrm:1", AMOCRM_RATE, clock=clock, sleep=clock.sleep)
    other.acquire()  # it knew nothing: its restart is refused (busy), then it adds, and waits its slot
    assert other.state_calls == 2
    assert clock.now - before >= AMOCRM_RATE.interval


def test_a_refusal_seen_by_one_slows_everyone() -> None:
    clock, state = Clock(), MemoryState()
    first = SharedLimiter(state, "bitrix24:m", BITRIX24_RATE, clock=clock, sleep=clock.sleep)
    second = SharedLimiter(state, "bitrix24:m", BITRIX24_RATE, clock=clock, sleep=clock.sleep)
    first.acquire()
    first.back_off(3.0)
    before = clock.now
    assert second.acquire() - before == pytest.approx(3.0)  # the instant it may go
    assert clock.now - before == pytest.approx(3.0)


def test_an_unreachable_store_waits_then_fails_never_calls_unmetered() -> None:
    clock, state = Clock(), MemoryState()
    limiter = SharedLimiter(state, "amocrm:1", AMOCRM_RATE, clock=clock, sleep=clock.sleep)
    state.fail_next = 3
    limiter.acquire()  # waited through three failures
    assert clock.now > 1_000.0
    state.fail_next = 10_000
    with pytest.raises(CrmUnavailable):
        limiter.acquire()


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_seconds(a, 5, 300) for a in (1, 2, 3, 10)] == [5, 10, 20, 300]


class SlowState(MemoryState):
    """A store whose every write takes ``seconds`` of the shared clock (a busy table, a slow network)."""

    def __init__(self, clock: Clock, seconds: float | list[float]) -> None:
        super().__init__()
        self.clock = clock
        self.latencies = itertools.cycle(seconds if isinstance(seconds, list) else [seconds])
        self.writes = 0

    def _write(self) -> None:
        self.writes += 1
        assert self.writes < 1_000, "the budget keeps writing: every slot it reserves is gone when the write returns"
        self.clock.now += next(self.latencies)

    def advance(self, key: str, interval: float, now: float) -> float | None:
        self._write()
        return super().advance(key, interval, now)

    def restart(self, key: str, now: float, new: float) -> float | None:
        self._write()
        return super().restart(key, now, new)


@pytest.mark.parametrize("write_seconds", [0.005, 0.025, 0.045, 0.1, 0.25, 0.8])
def test_a_slow_budget_write_does_not_make_every_request_late_for_its_own_slot(write_seconds: float) -> None:
    """amoCRM's budget holds each start within 30 ms of its slot, and a slot reserved for now is behind by the
    write's own latency when it returns. Reserved as far ahead as the reservations take, an idle budget's request
    costs one write, not one more each time the store is slower than 30 ms (a store slower than 60 ms, a busy table
    or a throttled write the SDK retried, once made every attempt late: writes without end); the spacing holds."""
    clock = Clock()
    state = SlowState(clock, write_seconds)
    limiter = SharedLimiter(state, "amocrm:1", AMOCRM_RATE, clock=clock, sleep=clock.sleep)
    limiter.acquire()  # learns how long a reservation takes
    times, calls = [], limiter.state_calls
    for _ in range(20):
        clock.now += 0.3  # each request after the previous one's answer: the budget idle again
        limiter.acquire()
        times.append(clock.now)
    assert limiter.state_calls - calls == 20  # one write a request
    assert all(b - a >= AMOCRM_RATE.interval for a, b in itertools.pairwise(times))


def test_a_store_whose_latency_swings_costs_few_writes_and_keeps_the_spacing() -> None:
    """Writes of 10 ms to 300 ms in turn: the lead follows a slow write at once and comes down slowly, so most
    requests still cost one write, and none starts closer than the spacing to the one before."""
    clock = Clock()
    state = SlowState(clock, [0.01, 0.3, 0.02, 0.15, 0.01, 0.01, 0.25, 0.05])
    limiter = SharedLimiter(state, "amocrm:1", AMOCRM_RATE, clock=clock, sleep=clock.sleep)
    times, calls = [], limiter.state_calls
    for n in range(40):
        clock.now += 0.3 if n % 2 else 0.0  # idle and busy turns
        limiter.acquire()
        times.append(clock.now)
    assert limiter.state_calls - calls <= 60  # at most 1.5 writes a request
    # Each start at most 30 ms after its slot: never 8 in a second (amoCRM's limit is 7).
    assert all(b - a >= AMOCRM_RATE.interval - LATE_START_SECONDS for a, b in itertools.pairwise(times))
    assert all(times[n + 7] - times[n] > 1.0 for n in range(len(times) - 7))


def test_a_budget_new_to_the_process_starts_from_the_latency_its_others_learned() -> None:
    """A Lambda environment meets most amoCRM accounts for the first time. Their budgets share the process's store
    and so its latency: the first request of a new one reserves as far ahead as the others' writes took and costs
    one write, where a budget starting from no lead comes back late for its slot and writes again."""
    clock = Clock()
    state = SlowState(clock, 0.2)
    latency = StoreLatency()

    def budget(account: str, shared: StoreLatency | None) -> SharedLimiter:
        return SharedLimiter(state, account, AMOCRM_RATE, clock=clock, sleep=clock.sleep, latency=shared)

    budget("amocrm:first", latency).acquire()  # learns how long a reservation takes
    for account in ("amocrm:second", "amocrm:third"):
        clock.now += 0.3
        before = state.writes
        budget(account, latency).acquire()
        assert state.writes - before == 1
    clock.now += 0.3
    before = state.writes
    budget("amocrm:fourth", None).acquire()
    assert state.writes - before == 2  # on its own: late for its first slot, so a second write


def test_a_store_slowing_down_costs_one_more_write_not_one_for_each_step_it_slows() -> None:
    """Writes of 20 ms, then a wave of 200-260 ms (the process's other accounts reserving at the same moment): the
    request that meets the first slow write is late for its slot and takes another; that retry, reserved twice the
    slow write's time ahead, is back before its slot although it is slower still (a lead of just the last latency
    was late again and wrote a third time)."""
    clock = Clock()
    state = SlowState(clock, [0.02, 0.02, 0.02, 0.2, 0.26, 0.22])
    limiter = SharedLimiter(state, "amocrm:1", AMOCRM_RATE, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        clock.now += 0.3
        limiter.acquire()
    before = state.writes
    clock.now += 0.3
    limiter.acquire()
    assert state.writes - before == 2


def test_a_process_budgets_share_one_store_latency() -> None:
    budgets = Budgets(MemoryState())
    amo = budgets.for_integration(Integration(integration_id="a", crm="amocrm", crm_domain="one.amocrm.ru"))
    b24 = budgets.for_integration(Integration(integration_id="b", crm="bitrix24", crm_domain="two.bitrix24.ru"))
    assert amo.latency is b24.latency is budgets.latency


def test_a_burst_budget_reserves_for_now_whatever_its_writes_take() -> None:
    clock = Clock()
    limiter = SharedLimiter(SlowState(clock, 0.05), "bitrix24:m", BITRIX24_RATE, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    before = clock.now
    limiter.acquire()
    assert clock.now - before == pytest.approx(0.05)  # the write, no wait for a slot ahead

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from leadbridge.http.ratelimit import LeakyBucket, WindowLimiter, backoff_seconds


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@settings(max_examples=200)
@given(
    st.integers(min_value=1, max_value=12),
    st.lists(st.tuples(st.floats(0, 0.5), st.floats(0, 0.3), st.floats(0, 1)), max_size=60),
)
def test_no_window_at_the_crm_ever_sees_more_than_the_limit(
    limit: int, requests: list[tuple[float, float, float]]
) -> None:
    """Each request: an idle gap before it, a latency, and where inside the latency it reaches the CRM."""
    clock = ManualClock()
    limiter = WindowLimiter(limit, clock=clock, sleep=clock.sleep)
    arrivals = []
    for gap, latency, where in requests:
        clock.now += gap
        limiter.acquire()
        arrivals.append(clock.now + latency * where)
        clock.now += latency
        limiter.done()
    arrivals.sort()
    for i, first in enumerate(arrivals):
        assert sum(1 for t in arrivals[i:] if t - first < 1.0) <= limit


def test_back_off_delays_the_next_request() -> None:
    clock = ManualClock()
    limiter = WindowLimiter(7, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.done()
    limiter.back_off(3.0)
    assert limiter.acquire() >= 3.0


def test_steady_rate_is_the_limit_per_window() -> None:
    clock = ManualClock()
    limiter = WindowLimiter(7, clock=clock, sleep=clock.sleep, margin=0.0)
    start = clock.now
    for _ in range(70):
        limiter.acquire()
        clock.now += 0.01  # each request takes 10 ms
        limiter.done()
    assert 9.0 < clock.now - start < 10.2  # 70 requests at 7 per (1 s + latency)


@settings(max_examples=100)
@given(st.lists(st.floats(min_value=0, max_value=2), max_size=200))
def test_leaky_bucket_mirror_never_exceeds_the_portal_limit(gaps: list[float]) -> None:
    """Replay the portal's own counter (grows 1 per request, drains 2/s, refuses above 50) over our requests."""
    clock = ManualClock()
    bucket = LeakyBucket(50, 2.0, clock=clock, sleep=clock.sleep)
    portal, last = 0.0, clock.now
    for gap in gaps:
        clock.now += gap
        bucket.acquire()
        portal = max(0.0, portal - (clock.now - last) * 2.0) + 1
        last = clock.now
        assert portal <= 50


def test_burst_then_drain_rate() -> None:
    clock = ManualClock()
    bucket = LeakyBucket(50, 2.0, clock=clock, sleep=clock.sleep, headroom=0)
    for _ in range(50):
        assert bucket.acquire() == 0
    start = clock.now
    for _ in range(10):
        bucket.acquire()
    assert clock.now - start == 5.0  # 10 more at 2 per second


def test_backoff_grows_and_caps() -> None:
    assert [backoff_seconds(n, 5, 60) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from leadbridge.http.ratelimit import LeakyBucket, Pacer, backoff_seconds


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@settings(max_examples=100)
@given(st.integers(min_value=1, max_value=20), st.lists(st.floats(min_value=0, max_value=0.5), max_size=60))
def test_pacer_never_allows_more_than_rate_in_any_window(rate: int, gaps: list[float]) -> None:
    clock = ManualClock()
    pacer = Pacer(rate, clock=clock, sleep=clock.sleep)
    sent = []
    for gap in gaps:
        clock.now += gap
        pacer.acquire()
        sent.append(clock.now)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t - start < 1.0) <= rate


def test_pacer_back_off_delays_the_next_request() -> None:
    clock = ManualClock()
    pacer = Pacer(7, clock=clock, sleep=clock.sleep)
    pacer.acquire()
    pacer.back_off(3.0)
    assert pacer.acquire() >= 3.0


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

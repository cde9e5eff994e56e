"""The hook's deliveries are stamped by the worker (``last_webhook_at``) with the batch's counters: no request of
their own when the batch counted something for the integration, and at most one a minute when it did not."""

from __future__ import annotations

from typing import Any

from leadbridge.aws.store.integrations import BatchStatus


class Recorded:
    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[str, int], float | None]] = []

    def record_outcomes(self, integration_id: str, counts: Any, *rest: Any) -> None:
        self.writes.append((integration_id, dict(counts), rest[-1]))


def test_a_delivery_rides_on_the_counters_write_and_alone_is_written_once_a_minute() -> None:
    inner, now = Recorded(), [1000.0]
    status = BatchStatus(inner, clock=lambda: now[0])  # type: ignore[arg-type]
    status.record_delivery("a", 50.0)
    status.record_delivery("a", 60.5)  # the latest wins
    status.record_outcome("a", "accepted")
    status.record_delivery("b", 61.0)  # chat messages only: nothing counted
    status.flush()
    assert inner.writes == [("a", {"accepted": 1}, 60.5), ("b", {}, 61.0)]

    inner.writes.clear()
    now[0] += 30
    status.record_delivery("b", 90.0)
    status.flush()
    assert inner.writes == []  # b's stamp alone was written 30 s ago
    status.record_delivery("b", 95.0)
    status.record_outcome("b", "emitted")
    status.flush()
    assert inner.writes == [("b", {"emitted": 1}, 95.0)]  # with counters: always, at no extra request
    now[0] += 31
    status.record_delivery("b", 130.0)
    status.flush()
    assert inner.writes[-1] == ("b", {}, 130.0)

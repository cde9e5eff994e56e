"""A batch's accounts are read at the same time (``crms.enrichment.overlapped``)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from leadbridge.crms.enrichment import overlapped


def test_tasks_run_at_the_same_time_and_their_counts_add_up() -> None:
    # Each task waits for all the others: one after another, the first would wait for ever (the barrier breaks).
    everyone = threading.Barrier(4, timeout=30)

    def task(n: int) -> Callable[[], int]:
        def run() -> int:
            everyone.wait()
            return n

        return run

    assert overlapped([task(n) for n in (1, 2, 3, 4)]) == 10


def test_an_error_is_raised_after_every_task_finished() -> None:
    finished: list[str] = []

    def fails() -> int:
        raise KeyError("refused")

    def works() -> int:
        finished.append("works")
        return 1

    with pytest.raises(KeyError):
        overlapped([fails, works, works])
    assert finished == ["works", "works"]


def test_one_task_runs_in_the_callers_thread() -> None:
    assert overlapped([threading.get_ident]) == threading.get_ident()
    assert overlapped([]) == 0

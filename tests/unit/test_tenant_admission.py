"""Per-integration admission at the webhooks, on a clock the test moves: quiet integrations cost nothing and are
never refused, a storm is refused beyond its share, and never more often than the CRM forgives."""

from __future__ import annotations

from leadbridge.flows.hooks.admission import TenantAdmission


class Budgets:
    """The limits table's semantics (a window and a count per key), in memory."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[int, int]] = {}
        self.writes = 0

    def take(self, key: str, window: int, count: int, cap: int, new_window: bool = False) -> bool:
        self.writes += 1
        seen_window, taken = self.items.get(key, (-1, 0))
        if seen_window == window and taken + count > cap:
            return False
        self.items[key] = (window, (taken if seen_window == window else 0) + count)
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_quiet_integration_costs_no_shared_write_and_is_never_refused() -> None:
    budgets, clock = Budgets(), Clock()
    admission = TenantAdmission(budgets, rate=1, quiet=5, clock=clock)
    for _ in range(100):  # 5 a window, for 100 windows
        assert all(admission.admit("quiet") for _ in range(5))
        clock.now += 10
    assert budgets.writes == 0


def test_a_storm_is_refused_beyond_its_share_while_others_pass() -> None:
    budgets, clock = Budgets(), Clock()
    admission = TenantAdmission(budgets, rate=3, window_seconds=10, quiet=5, chunk=10, clock=clock)
    answers = [admission.admit("storm") for _ in range(100)]
    assert answers[:35] == [True] * 35  # 5 quiet here, then the shared 30 of the window in chunks of 10
    assert not any(answers[35:85])  # refused: amoCRM delivers them again
    assert all(answers[85:])  # 50 refusals in 2 hours: the rest is taken rather than have the hook switched off
    assert all(admission.admit("quiet") for _ in range(5))
    # 3 chunks and the no, one per refusal and the one that said they are used: never one per quiet delivery
    assert budgets.writes == 3 + 1 + 50 + 1
    clock.now += 10
    assert admission.admit("storm")  # a new window


def test_refusals_stop_before_the_crm_would_switch_the_hook_off() -> None:
    budgets, clock = Budgets(), Clock()
    admission = TenantAdmission(budgets, rate=1, window_seconds=10, quiet=0, chunk=10, refusals=50, clock=clock)
    refused = 0
    for _ in range(40):  # 40 windows of 20 deliveries within 2 hours
        refused += sum(1 for _ in range(20) if not admission.admit("storm"))
        clock.now += 10
    assert refused == 50  # amoCRM switches a hook off after more than 100 failed answers in 2 hours


def test_deliveries_that_come_once_are_never_refused() -> None:
    admission = TenantAdmission(Budgets(), rate=1, quiet=0, chunk=10, clock=Clock())
    assert all(admission.admit("storm", may_refuse=False) for _ in range(100))


def test_deliveries_at_once_in_one_environment_share_one_chunk() -> None:
    """A server running requests in threads (the local stack): ten deliveries at once take one chunk, not five."""
    import threading
    import time as real_time

    class SlowBudgets(Budgets):
        def take(self, key: str, window: int, count: int, cap: int, new_window: bool = False) -> bool:
            real_time.sleep(0.05)  # the conditional write's round trip: the others arrive meanwhile
            return super().take(key, window, count, cap)

    budgets = SlowBudgets()
    admission = TenantAdmission(budgets, rate=1, quiet=5, chunk=10, clock=Clock())
    answers: list[bool] = []
    threads = [threading.Thread(target=lambda: answers.append(admission.admit("quiet"))) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [True] * 10
    assert budgets.writes == 1

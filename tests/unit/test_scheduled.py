"""Scheduled work's pure parts: the job message, the shards, the fan-out's paging, the sweep position."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from leadbridge.aws.store.work_index import SHARDS, all_shards, work_shard
from leadbridge.flows.recovery.sweep import SweepPosition
from leadbridge.flows.scheduled.jobs import KINDS, PLANS, InvalidJob, Job
from leadbridge.flows.scheduled.planner import EXPAND_PAGE, Expander, plan
from leadbridge.flows.scheduled.work import MAX_BACKOFF_SECONDS, backoff_seconds

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=40)


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    kind = draw(st.sampled_from(KINDS))
    which = draw(st.sampled_from(PLANS))
    planned_at = draw(st.integers(min_value=0, max_value=2**40))
    if kind == "expand":
        cursor = draw(st.none() | st.dictionaries(st.sampled_from(["pk", "sk", "work_shard"]), st.just({"S": "x"})))
        return Job(kind, which, planned_at, shard=draw(ids), cursor=cursor or None)
    return Job(kind, which, planned_at, integration_id=draw(ids))


@given(jobs())
def test_a_job_survives_the_queue(job: Job) -> None:
    assert Job.from_json(job.to_json()) == job


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)


@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps)))
def test_anything_else_on_the_queue_is_an_invalid_job_never_a_crash(body: str) -> None:
    try:
        job = Job.from_json(body)
    except InvalidJob:
        return
    assert job.kind in KINDS
    assert job.plan in PLANS
    assert (job.kind == "expand") == bool(job.shard)


def test_shards_spread_ten_thousand_integrations_evenly() -> None:
    counts = Counter(work_shard("active", f"amo-{n:08x}") for n in range(10_000))
    assert set(counts) == set(all_shards("active"))
    expected = 10_000 / SHARDS
    assert max(abs(c - expected) for c in counts.values()) < 0.2 * expected


def test_a_schedule_plans_one_expand_job_per_shard() -> None:
    recovery = plan("recovery", 1_000)
    assert sorted(j.shard for j in recovery) == all_shards("active")
    assert {j.kind for j in recovery} == {"expand"}
    assert sorted(j.shard for j in plan("backfill", 1_000)) == all_shards("backfill")
    assert len(plan("tokens", 1_000)) == 1


class MemoryIndex:
    """Shards held in memory, paged like the index (sorted, ``Limit``, a cursor after the last key)."""

    def __init__(self, integration_ids: list[str]) -> None:
        self.shards: dict[str, list[str]] = {}
        for integration_id in sorted(integration_ids):
            self.shards.setdefault(work_shard("active", integration_id), []).append(integration_id)
        self.largest_read = 0

    def page(self, shard: str, cursor: dict[str, Any] | None, limit: int) -> tuple[list[str], dict[str, Any] | None]:
        rows = self.shards.get(shard, [])
        start = rows.index(cursor["pk"]["S"]) + 1 if cursor else 0
        found = rows[start : start + limit]
        self.largest_read = max(self.largest_read, len(found))
        more = start + limit < len(rows)
        return found, ({"pk": {"S": found[-1]}} if more and found else None)


class NoTokens:
    def due_page(
        self, before: int, cursor: dict[str, Any] | None, limit: int
    ) -> tuple[list[str], dict[str, Any] | None]:
        return [], None


class MemoryQueue:
    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def send_many(self, jobs: list[Job]) -> None:
        self.jobs.extend(jobs)


def test_expanding_every_shard_gives_each_active_integration_one_job_and_no_read_exceeds_a_page() -> None:
    integration_ids = [f"b24-{n:06d}" for n in range(12_345)]
    index, queue = MemoryIndex(integration_ids), MemoryQueue()
    expander = Expander(index, NoTokens(), queue)
    queue.send_many(plan("recovery", 1_000))
    sweeps: list[str] = []
    expansions = 0
    while queue.jobs:
        job = queue.jobs.pop(0)
        if job.kind == "expand":
            expander.expand(job)
            expansions += 1
        else:
            assert (job.kind, job.plan, job.planned_at) == ("sweep", "recovery", 1_000)
            sweeps.append(job.integration_id)
    assert sorted(sweeps) == integration_ids  # every one, exactly once
    assert index.largest_read <= EXPAND_PAGE
    assert expansions == sum(-(-len(rows) // EXPAND_PAGE) for rows in index.shards.values())


@given(json_values)
def test_an_unreadable_sweep_position_opens_a_new_window(record: Any) -> None:
    position = SweepPosition.from_record(record)
    assert position is None or isinstance(position.since, int)


def test_a_sweep_position_survives_the_status_item() -> None:
    position = SweepPosition(opened_at=10, since=5, until=None, after={"lead": 99}, done=("deal",))
    assert SweepPosition.from_record(position.to_record()) == position


def test_a_failing_sweep_backs_off_doubling_up_to_its_cap() -> None:
    waits = [backoff_seconds(runs) for runs in range(1, 10)]
    assert waits[:4] == [1800, 3600, 7200, 14400]
    assert waits == sorted(waits)
    assert max(waits) == MAX_BACKOFF_SECONDS


def test_an_events_page_names_each_talk_once_in_order() -> None:
    """40,000 talk ids in one listing: each once, in first-seen order (a list's ``in`` made this quadratic)."""

    from leadbridge.crms.amocrm.recovered import amo_talks_page

    class Events:
        def list_events(self, *_: Any) -> tuple[list[dict[str, Any]], bool]:
            ids = [*range(40_000), *range(0, 40_000, 7)]
            return [{"value_after": [{"message": {"talk_id": n + 1}}]} for n in ids], False

    talk_ids, more = amo_talks_page(Events(), 0, 1, 1)  # type: ignore[arg-type]
    assert talk_ids == [str(n + 1) for n in range(40_000)]
    assert more is False

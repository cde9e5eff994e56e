"""What a schedule starts: one ``expand`` job per shard; and what an ``expand`` job does: one page of its shard.

No invocation reads more than one page (``EXPAND_PAGE`` ids) of the index, whatever the number of integrations: a
shard with more pages hands its next page to a new ``expand`` job, so planning 100,000 integrations is a few hundred
small jobs side by side, not one long loop.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from leadbridge.aws.store.work_index import all_shards
from leadbridge.flows.scheduled.jobs import WORK_OF_PLAN, Job, JobReport, Plan

EXPAND_PAGE = 500  # ids per expand job: one index query and 50 SendMessageBatch calls
TOKEN_LOOKAHEAD_SECONDS = 2 * 3600  # a little more than the token schedule's interval
TOKENS_SHARD = "due"


class Jobs(Protocol):
    def send_many(self, jobs: list[Job]) -> None: ...


class ShardPages(Protocol):
    def page(
        self, shard: str, cursor: dict[str, Any] | None, limit: int
    ) -> tuple[list[str], dict[str, Any] | None]: ...


class DueTokens(Protocol):
    def due_page(
        self, before: int, cursor: dict[str, Any] | None, limit: int
    ) -> tuple[list[str], dict[str, Any] | None]: ...


def plan(which: Plan, now: int) -> list[Job]:
    """The ``expand`` jobs a schedule puts on the queue."""
    if which == "tokens":
        return [Job("expand", "tokens", now, shard=TOKENS_SHARD)]
    shards = all_shards("active") if which == "recovery" else all_shards("backfill")
    return [Job("expand", which, now, shard=shard) for shard in shards]


class Expander:
    def __init__(self, index: ShardPages, tokens: DueTokens, jobs: Jobs) -> None:
        self.index = index
        self.tokens = tokens
        self.jobs = jobs

    def expand(self, job: Job) -> JobReport:
        if job.plan == "tokens":
            ids, cursor = self.tokens.due_page(job.planned_at + TOKEN_LOOKAHEAD_SECONDS, job.cursor, EXPAND_PAGE)
        else:
            ids, cursor = self.index.page(job.shard, job.cursor, EXPAND_PAGE)
        work = [Job(WORK_OF_PLAN[job.plan], job.plan, job.planned_at, integration_id=i) for i in dict.fromkeys(ids)]
        if cursor is not None:
            work.append(replace(job, cursor=cursor))
        self.jobs.send_many(work)
        return JobReport("expand", job.shard, "done", counts={"jobs": len(ids), "next_page": int(cursor is not None)})

"""What travels on the jobs queue, and what a job reports when it ends."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

Plan = Literal["recovery", "backfill", "tokens"]
JobKind = Literal["expand", "sweep", "backfill", "token"]
Outcome = Literal["done", "partial", "skipped", "failed"]
PLANS: tuple[Plan, ...] = get_args(Plan)
KINDS: tuple[JobKind, ...] = get_args(JobKind)
WORK_OF_PLAN: dict[Plan, JobKind] = {"recovery": "sweep", "backfill": "backfill", "tokens": "token"}


class InvalidJob(ValueError):
    """A message on the jobs queue that is not a job (it is dead-lettered at once: it can never succeed)."""


@dataclass(frozen=True, slots=True)
class Job:
    kind: JobKind
    plan: Plan
    planned_at: int  # when the schedule fired: a job planned before the integration's last full run is redundant
    integration_id: str = ""  # every kind but ``expand``
    shard: str = ""  # ``expand``: the index shard to page through
    cursor: dict[str, Any] | None = None  # ``expand``: where the next page of the shard starts

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in ("", None)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> Job:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise InvalidJob("not JSON") from exc
        if not isinstance(data, dict):
            raise InvalidJob("not an object")
        kind, plan, planned_at = data.get("kind"), data.get("plan"), data.get("planned_at")
        if kind not in KINDS or plan not in PLANS:
            raise InvalidJob("unknown kind or plan")
        if not isinstance(planned_at, int) or isinstance(planned_at, bool) or planned_at < 0:
            raise InvalidJob("planned_at must be a non-negative integer")
        integration_id, shard, cursor = data.get("integration_id", ""), data.get("shard", ""), data.get("cursor")
        if not isinstance(integration_id, str) or not isinstance(shard, str):
            raise InvalidJob("integration_id and shard must be strings")
        if cursor is not None and not isinstance(cursor, dict):
            raise InvalidJob("cursor must be an object")
        if (kind == "expand") != bool(shard) or (kind != "expand") != bool(integration_id):
            raise InvalidJob("an expand job names a shard; every other job an integration")
        return cls(kind, plan, planned_at, integration_id, shard, cursor)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.integration_id or self.shard}"


@dataclass(frozen=True, slots=True)
class JobReport:
    kind: JobKind
    subject: str  # the integration id, or the shard of an ``expand`` job
    outcome: Outcome
    detail: str = ""  # why it was skipped or left partial, in words for the log
    counts: dict[str, int] = field(default_factory=dict)


class JobFailed(Exception):
    """A job that could not do its work this time (the CRM failed, timed out): retried, then dead-lettered."""

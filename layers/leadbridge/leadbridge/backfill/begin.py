"""Starting a backfill: the one way both the integrations API and the operators' command start one."""

from __future__ import annotations

from typing import Protocol

from leadbridge.backfill.job import BackfillJob, checked_period
from leadbridge.integration import Integration


class BackfillConflict(ValueError):
    """A backfill is running already, or the integration cannot run one."""


class Integrations(Protocol):
    def get(self, integration_id: str) -> Integration | None: ...


class Backfills(Protocol):
    def start(self, job: BackfillJob) -> bool: ...


def begin_backfill(
    integrations: Integrations, backfills: Backfills, integration_id: str, period_from: int, period_to: int, now: int
) -> BackfillJob | None:
    """The new backfill (None: no such integration); raises ``InvalidPeriod`` or ``BackfillConflict``."""
    integration = integrations.get(integration_id)
    if integration is None:
        return None
    if not integration.active:
        raise BackfillConflict("the integration is not active")
    job = BackfillJob.new(integration_id, integration.crm, *checked_period(period_from, period_to, now), now=now)
    if not backfills.start(job):
        raise BackfillConflict("a backfill is running for this integration; cancel it first")
    return job

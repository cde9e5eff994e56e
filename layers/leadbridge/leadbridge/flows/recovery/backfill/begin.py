"""Starting a backfill: the one way both the integrations API and the operators' command start one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from leadbridge.contract.backfill_job import BackfillJob, InvalidPeriod, checked_period
from leadbridge.contract.integration import Integration


class BackfillConflict(ValueError):
    """A backfill is running already, or the integration cannot run one."""


class Integrations(Protocol):
    def get(self, integration_id: str) -> Integration | None: ...


class Backfills(Protocol):
    def start(self, job: BackfillJob) -> bool: ...


def begin_backfill(
    integrations: Integrations,
    backfills: Backfills,
    integration_id: str,
    period_from: int,
    period_to: int,
    now: int,
    ledger_memory_days: int,
) -> BackfillJob | None:
    """The new backfill (None: no such integration); raises ``InvalidPeriod`` or ``BackfillConflict``.

    A backfill knows what was emitted already from the ledger, which forgets after ``ledger_memory_days``
    (``LedgerRetentionDays``): a period reaching further back would emit its older conversations again, so it is
    refused, saying how to get it."""
    integration = integrations.get(integration_id)
    if integration is None:
        return None
    if not integration.active:
        raise BackfillConflict("the integration is not active")
    period = checked_period(period_from, period_to, now)
    remembered_from = now - ledger_memory_days * 86_400
    if period[0] < remembered_from:
        since = datetime.fromtimestamp(remembered_from, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise InvalidPeriod(
            f"the ledger remembers {ledger_memory_days} days: conversations before {since} may have been emitted "
            "already and would come out again; start the period after it, or raise LedgerRetentionDays"
        )
    job = BackfillJob.new(integration_id, integration.crm, *period, now=now)
    if not backfills.start(job):
        raise BackfillConflict("a backfill is running for this integration; cancel it first")
    return job

"""One scheduled job's work, by kind: expand a shard, sweep one integration, step one backfill, keep one grant alive.

Every kind ends in a report; a job that could not do its work (the CRM failed or timed out) raises ``JobFailed``
and is retried, then dead-lettered (``scheduled/batch.py``). What needs a person (a dead grant, a blocked account,
missing rights) is not a failure of the job: it is skipped, and the integration's status says why.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.tokens import DynamoTokens
from leadbridge.contract.integration import Integration
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.flows.connect.crm_lists import CHECK_EVERY_SECONDS as SETTINGS_CHECK_SECONDS
from leadbridge.flows.connect.crm_lists import SESSION_FIELD_PROBLEMS, CrmPickers
from leadbridge.flows.connect.subscription import CHECK_EVERY_SECONDS, ensure_subscription, subscriptions_for
from leadbridge.flows.recovery.backfill.runner import BackfillRunner
from leadbridge.flows.recovery.sweep import Reconciler
from leadbridge.flows.scheduled.jobs import Job, JobFailed, JobReport
from leadbridge.flows.scheduled.planner import TOKEN_LOOKAHEAD_SECONDS, Expander
from leadbridge.flows.scheduled.upkeep import keep_alive
from leadbridge.http.errors import AccountBlocked, CrmError, GrantRevoked, InsufficientRights, NotConnected
from leadbridge.http.ratelimit import Budgets

logger = Logger(child=True)

BACKFILL_STEP_SECONDS = 50.0  # under the backfill schedule's minute: the next step finds the lease free
FIRST_BACKOFF_SECONDS = 30 * 60
MAX_BACKOFF_SECONDS = 6 * 3600
CHECK_SLOTS = 96  # quarter hours a day: integrations never checked take their first check in their own one
NEEDS_A_PERSON = (GrantRevoked, NotConnected, AccountBlocked, InsufficientRights)


class Counter(Protocol):
    def __call__(self, name: str, value: int = 1) -> None: ...


class ScheduledWork:
    def __init__(
        self,
        expander: Expander,
        integrations: DynamoIntegrations,
        reconciler: Reconciler,
        backfills: BackfillRunner,
        tokens: DynamoTokens,
        provider: TokenProvider,
        count: Counter,
        budgets: Budgets | None = None,
        hook_base_url: str = "",
        webhook_secret_grace_seconds: int = 86_400,
        pickers: CrmPickers | None = None,
    ) -> None:
        self.pickers = pickers
        self.budgets = budgets
        self.hook_base_url = hook_base_url
        self.webhook_secret_grace_seconds = webhook_secret_grace_seconds
        self.expander = expander
        self.integrations = integrations
        self.reconciler = reconciler
        self.backfills = backfills
        self.tokens = tokens
        self.provider = provider
        self.count = count

    def run(self, job: Job, time_left: Callable[[], float]) -> JobReport:
        if job.kind == "expand":
            return self.expander.expand(job)
        try:
            if job.kind == "token":
                return self._token(job)
            if job.kind == "backfill":
                return self._backfill(job, time_left)
            return self._sweep(job, time_left)
        except NEEDS_A_PERSON as exc:
            if isinstance(exc, InsufficientRights):  # e.g. the events log refused to a non-admin grant: say so
                self.integrations.set_connection_state(job.integration_id, "insufficient_rights", str(exc))
                self.count("CrmInsufficientRights")
            return JobReport(job.kind, job.integration_id, "skipped", f"needs a person: {type(exc).__name__}")
        except CrmError as exc:
            raise JobFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc

    def _active(self, job: Job) -> Integration | None:
        integration = self.integrations.get(job.integration_id)
        return integration if integration is not None and integration.active else None

    def _sweep(self, job: Job, time_left: Callable[[], float]) -> JobReport:
        integration = self._active(job)
        if integration is None:
            return JobReport("sweep", job.integration_id, "skipped", "not active")
        status = self.integrations.status(job.integration_id)
        if int(status.get("sweep_finished_at") or 0) > job.planned_at:
            return JobReport("sweep", job.integration_id, "skipped", "swept since this job was planned")
        failed_runs = int(status.get("failed_runs_sweep") or 0)
        if failed_runs and job.planned_at < int(status.get("gave_up_sweep_at") or 0) + backoff_seconds(failed_runs):
            return JobReport("sweep", job.integration_id, "skipped", f"backing off after {failed_runs} failed runs")
        self._check_hook(integration, status)
        self._check_settings(integration, status)
        outcome = self.reconciler.sweep(integration, status, time_left)
        counts: dict[str, int] = {}
        if outcome.report is not None:
            counts = {k: int(v) for k, v in asdict(outcome.report).items() if isinstance(v, int)}
            self.count("SweepRecovered", outcome.report.enqueued)
        if outcome.drift is not None:
            counts["drift_missing"] = outcome.drift.missing
            self.count("UnsortedChatsWithoutLead", outcome.drift.missing)
        if outcome.report is None:
            return JobReport("sweep", job.integration_id, "skipped", f"{outcome.kind}: {outcome.detail}", counts)
        if outcome.report.complete:
            return JobReport("sweep", job.integration_id, "done", "window listed", counts)
        return JobReport("sweep", job.integration_id, "partial", "goes on from its position next run", counts)

    def _check_hook(self, integration: Integration, status: dict[str, Any]) -> None:
        """Twice a day per integration: its own webhook subscription is still there (and current), or it is restored,
        and the status says so. A refusal is recorded there and never fails the sweep."""
        if self.budgets is None or not self.hook_base_url or not integration.account_id:
            return
        last = status.get("hook_subscription")
        checked_at = int(last.get("at") or 0) if isinstance(last, dict) else 0
        if time.time() - checked_at < CHECK_EVERY_SECONDS:
            return
        crm = subscriptions_for(integration, self.provider, self.budgets.for_integration(integration))
        try:
            state = ensure_subscription(
                integration, crm, self.integrations, self.hook_base_url, self.webhook_secret_grace_seconds
            )
        except CrmError as exc:
            logger.info("hook check refused", extra={"integration_id": integration.integration_id, "error": str(exc)})
            return
        if state == "restored":
            self.count("CrmWebhookRestored")

    def _check_settings(self, integration: Integration, status: dict[str, Any]) -> None:
        """Once a day per integration, or at its next sweep while pending: the session field is still in the CRM
        and the mapping keys are channels it produces. A field deleted since it was chosen raises an alarm."""
        if self.pickers is None or not integration.account_id:
            return
        if status.get("connection_state") not in {None, "connected"}:
            return  # blocked, missing rights, a dead grant: a person acts first, and the check follows them
        last = status.get("settings_check")
        if not isinstance(last, dict):  # never checked (a stack upgraded): spread over the day, not all at once
            if zlib.crc32(integration.integration_id.encode()) % CHECK_SLOTS != (int(time.time()) // 900) % CHECK_SLOTS:
                return
            last = {}
        if last.get("state") != "pending" and time.time() - int(last.get("checked_at") or 0) < SETTINGS_CHECK_SECONDS:
            return
        check = self.pickers.check(integration, fresh=True)
        self.integrations.record_settings_check(integration.integration_id, check.record())
        if check.state in SESSION_FIELD_PROBLEMS:
            self.count("SessionFieldMissing")
        if check.unknown_mapping_keys:
            self.count("UnknownMappingKeys", len(check.unknown_mapping_keys))

    def _backfill(self, job: Job, time_left: Callable[[], float]) -> JobReport:
        seconds = min(BACKFILL_STEP_SECONDS, time_left())
        report = self.backfills.run_one(job.integration_id, seconds)
        if report is None:
            return JobReport("backfill", job.integration_id, "skipped", "no backfill running")
        logger.info("backfill step", extra=asdict(report))
        self.count("BackfillImported", report.imported)
        self.count("BackfillErrors", report.errors)
        counts = {"listed": report.listed, "imported": report.imported, "already_known": report.already_known}
        if report.finished:
            return JobReport("backfill", job.integration_id, "done", "finished", counts)
        return JobReport("backfill", job.integration_id, "partial", report.stopped_by or "", counts)

    def _token(self, job: Job) -> JobReport:
        due_before = job.planned_at + TOKEN_LOOKAHEAD_SECONDS
        outcome = keep_alive(
            self.tokens, self.integrations, self.provider, job.integration_id, due_before, int(time.time())
        )
        if outcome == "refreshed":
            self.count("TokensRefreshed")
            return JobReport("token", job.integration_id, "done", outcome)
        if outcome == "dead":
            self.count("TokensDead")
        return JobReport("token", job.integration_id, "skipped", outcome)


def backoff_seconds(failed_runs: int) -> int:
    """How long a sweep that failed ``failed_runs`` runs in a row waits before its next try: a portal that is gone
    costs a few jobs a day, not three attempts every 15 minutes (and fills no DLQ); one that comes back is swept
    again within the backoff, at most ``MAX_BACKOFF_SECONDS``."""
    return int(min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, failed_runs - 1)))

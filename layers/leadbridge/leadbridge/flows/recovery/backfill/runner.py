"""One backfill step: a scheduled job advances one running backfill a little, within its share of the CRM's limit.

Every minute the planner puts one job per running backfill on the jobs queue (``scheduled/``), so backfills run
side by side, each paced by its own CRM's budget. A step takes a lease on its backfill (so two steps never work
on the same one), lists a page or imports a few conversations at a time, and writes its position after each
piece: a step stopped anywhere (its time is up, the function times out, the CRM refuses) loses nothing, and the
next one goes on from the last written position.

Live traffic keeps priority in two ways: every request the backfill causes, its own and the worker's for each
conversation it hands over, is paced by a second budget at ``share`` of the CRM's rate (``Budgets.for_backfill``),
and imported conversations travel in their own message group of the inbox, so a webhook never waits behind them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.queues import InboxMessage, InboxWriteError
from leadbridge.aws.store.backfills import DynamoBackfills
from leadbridge.contract.backfill_job import BackfillJob, InvalidPeriod, checked_period
from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.bitrix24.client import BitrixClient
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.flows.recovery.backfill.sources import AmoListing, BitrixListing, Listing
from leadbridge.http.errors import BadRequest, BadResponse, CrmError, InsufficientRights, NotFound
from leadbridge.http.ratelimit import Budgets, SharedLimiter

# What one item's read may meet that says nothing of the others: gone, refused to this user, or a page that is no
# answer. A limit, an outage or a dead grant stops the step instead (the next step reads the item again).
UNREADABLE = (NotFound, BadRequest, BadResponse, InsufficientRights)
logger = Logger(child=True)

IMPORT_CHUNK = 10  # pending conversations read per step (one ledger read for all of them)
STEP_RESERVE_SECONDS = 10.0  # no new step when less than this is left: a step must end before the run does


class Ledger(Protocol):
    def seen(self, lead_keys: list[str]) -> set[str]: ...


class Inbox(Protocol):
    def send_many(self, messages: list[InboxMessage]) -> None: ...


class Integrations(Protocol):
    def get(self, integration_id: str) -> Integration | None: ...


class Waiting(Protocol):
    def waiting_for(self, integration_id: str) -> tuple[str | None, float]: ...


@dataclass(frozen=True, slots=True)
class BackfillRunReport:
    integration_id: str
    backfill_id: str
    listed: int
    imported: int
    already_known: int
    errors: int
    finished: bool
    stopped_by: str | None  # why this run left it unfinished: time, crm error, lease, waiting


class BackfillRunner:
    def __init__(
        self,
        backfills: DynamoBackfills,
        integrations: Integrations,
        ledger: Ledger,
        inbox: Inbox,
        tokens: TokenProvider,
        budgets: Budgets,
        waiting: Waiting,
        share: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backfills = backfills
        self.integrations = integrations
        self.ledger = ledger
        self.inbox = inbox
        self.tokens = tokens
        self.budgets = budgets
        self.waiting = waiting
        self.share = share
        self.clock = clock

    def run_one(self, integration_id: str, seconds: float) -> BackfillRunReport | None:
        """Work for at most ``seconds`` on the integration's running backfill (None: it has none running)."""
        deadline = self.clock() + seconds
        job = self.backfills.get(integration_id)
        if job is None or job.state != "running":
            return None
        try:
            return self._one(job, deadline)
        except (InboxWriteError, BotoCoreError, ClientError):
            raise  # AWS is failing: the job fails, visibly, and is retried; the backfill's position is in DynamoDB
        except Exception as exc:  # this backfill's own failure: on its status, and the next step tries again
            logger.exception("backfill step failed", extra={"integration_id": job.integration_id})
            self.backfills.advance(job, last_error=f"unexpected: {type(exc).__name__}")
            return _Progress(job).report(stopped_by=f"unexpected: {type(exc).__name__}")

    def _one(self, job: BackfillJob, deadline: float) -> BackfillRunReport | None:
        try:
            checked_period(job.period_from, job.period_to, job.started_at)
        except InvalidPeriod as exc:  # stored before the period was checked as it is now: never runnable
            self.backfills.advance(job, last_error=f"invalid period: {exc}")
            self.backfills.finish(job, "cancelled", int(self.clock()))
            return None
        integration = self.integrations.get(job.integration_id)
        if integration is None or not integration.active or integration.crm != job.crm:
            self.backfills.finish(job, "cancelled", int(self.clock()))
            return None
        progress = _Progress(job)
        waiting, _ = self.waiting.waiting_for(job.integration_id)
        if waiting is not None:  # reconnecting is a person's job; the backfill goes on after it
            return progress.report(stopped_by=f"waiting: integration {waiting}")
        lease = int(deadline - self.clock()) + 30
        if not self.backfills.take_lease(job, int(self.clock()), lease):
            return progress.report(stopped_by="lease held by another run")
        try:
            return self._work(job, integration, deadline, progress)
        except CrmError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            logger.warning("backfill paused", extra={"integration_id": job.integration_id, "error": reason[:200]})
            self.backfills.advance(job, last_error=reason)
            return progress.report(stopped_by=f"crm: {type(exc).__name__}")
        finally:
            self.backfills.release_lease(job)

    def _work(
        self, job: BackfillJob, integration: Integration, deadline: float, progress: _Progress
    ) -> BackfillRunReport:
        listing = self._listing(integration)
        pace = self.budgets.for_backfill(integration, self.share)
        if not job.cursor and not job.listing_done:
            self.backfills.clear_others(job)
        while deadline - self.clock() >= STEP_RESERVE_SECONDS:
            if not job.listing_done:
                _take(pace, 1)
                keys, cursor = listing.page(job)
                added = self.backfills.add_pending(job, keys, int(self.clock()))
                if added is None:
                    return progress.report(stopped_by="cancelled")
                done = cursor is None
                if not self.backfills.advance(job, cursor=cursor or job.cursor, listing_done=done):  # total: counted
                    return progress.report(stopped_by="cancelled")
                job = job.moved(cursor=cursor or job.cursor, listing_done=done, total=job.total + added)
                progress.listed += added
                continue
            keys = self.backfills.pending(job, IMPORT_CHUNK)
            if not keys:
                self.backfills.finish(job, "done", int(self.clock()))
                return progress.report(finished=True)
            if not self._import(job, listing, pace, keys, deadline, progress):
                return progress.report(stopped_by="cancelled")
        return progress.report(stopped_by="time")

    def _import(
        self,
        job: BackfillJob,
        listing: Listing,
        pace: SharedLimiter,
        keys: list[str],
        deadline: float,
        progress: _Progress,
    ) -> bool:
        known = self.ledger.seen([listing.lead_key(k) for k in keys])
        cost = listing.message_requests + listing.worker_requests_per_conversation
        for key in keys:
            if deadline - self.clock() < STEP_RESERVE_SECONDS:
                return True
            counts: dict[str, int]
            if listing.lead_key(key) in known:
                counts = {"already_known": 1}
            else:
                _take(pace, cost)
                try:
                    message = listing.message(job, key, self.clock())
                except UNREADABLE as exc:  # this item only: the period goes on without it, counted
                    logger.info("backfill item unreadable", extra={"key": key, "error": type(exc).__name__})
                    message, counts = None, {"errors": 1}
                else:
                    counts = {"done": 1} if message is not None else {"total": -1}  # not of the period
                if message is not None:
                    self.inbox.send_many([message])
            if not self.backfills.settle(job, key, counts):
                return False
            progress.count(counts)
        return True

    def _listing(self, integration: Integration) -> Listing:
        limiter = self.budgets.for_integration(integration)
        if integration.crm == "amocrm":
            return AmoListing(integration, AmoClient(integration, self.tokens, limiter))
        return BitrixListing(integration, BitrixClient(integration, self.tokens, limiter))


def _take(pace: SharedLimiter, requests: int) -> None:
    for _ in range(requests):
        pace.acquire()


class _Progress:
    def __init__(self, job: BackfillJob) -> None:
        self.job = job
        self.listed = 0
        self.imported = 0
        self.already_known = 0
        self.errors = 0

    def count(self, counts: dict[str, int]) -> None:
        self.imported += counts.get("done", 0)
        self.already_known += counts.get("already_known", 0)
        self.errors += counts.get("errors", 0)

    def report(self, finished: bool = False, stopped_by: str | None = None) -> BackfillRunReport:
        return BackfillRunReport(
            integration_id=self.job.integration_id,
            backfill_id=self.job.backfill_id,
            listed=self.listed,
            imported=self.imported,
            already_known=self.already_known,
            errors=self.errors,
            finished=finished,
            stopped_by=stopped_by,
        )

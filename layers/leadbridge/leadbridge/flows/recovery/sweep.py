"""The reconciliation sweep of one integration: what the CRM created recently that no webhook brought in.

Bitrix24 never resends a failed event, so a sweep lists the portal's leads and deals created since the
integration's watermark (minus an overlap), pages through them by id, and enqueues each one the ledger has never
seen, exactly as a webhook would (``source = sweep``). The worker's ledger claim makes a sweep and a late webhook
for the same lead one lead. Requests go through the same client, shared budget and token store as the worker.

amoCRM retries a failed webhook for about 1.5 hours and then gives up, and its REST API cannot list talks; but its
events log can (reference/amocrm-chats-events-dp.md A.1): a sweep lists the account's ``incoming_chat_message``
events since the watermark (minus the overlap; pages of 100; the last minute is left to the webhooks on their way),
collects their talks, and reads and enqueues each talk the ledger never saw, as a ``talk.add`` webhook would be.
After it, once an hour, the drift check compares the chats in Unsorted with the leads emitted (amocrm/drift.py).

A sweep is one scheduled job (``scheduled/``) with its own deadline. It enqueues what each page found before it
reads the next, and writes its position (the window's bounds and the next page) after each page, so a window too
big for one job, or a job stopped anywhere, goes on where it stopped at the next run; the watermark moves only
when a window was listed to its end. A blocked amoCRM account gets a probe instead (one ``GET /api/v4/account``):
when the API answers again, the integration is connected and its parked events are resumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from leadbridge.aws.queues import InboxMessage
from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.amocrm.recovered import amo_talk_message, amo_talks_page
from leadbridge.crms.bitrix24.client import BitrixClient
from leadbridge.crms.bitrix24.recovered import BITRIX_PAGE, EVENTS, bitrix_created_page, bitrix_entity_message
from leadbridge.crms.crm_values import as_id, iso_time
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.flows.recovery.drift import DriftMark, DriftReading, due
from leadbridge.flows.worker.parking import Parking
from leadbridge.http.errors import BadRequest, BadResponse, CrmError, InsufficientRights, NotFound
from leadbridge.http.ratelimit import Budgets

logger = Logger(child=True)

OVERLAP_SECONDS = 15 * 60
FIRST_WINDOW_SECONDS = 6 * 3600
MAX_PAGES_PER_ENTITY = 40  # per job: 2,000 entities; the window goes on from its position at the next run
AMO_SETTLE_SECONDS = 60  # the last minute's talks: their webhooks are probably still on their way
AMO_MAX_PAGES = 20  # per job: 2,000 messages; the window goes on from its position at the next run
PAGE_RESERVE_SECONDS = 15.0  # no new page (or talk read) with less than this left: the position must be written
SWEEP_LEASE_SECONDS = 15 * 60  # longer than a job may run: two jobs never sweep one integration at once
BITRIX_IDLE_SWEEP_SECONDS = 3 * 3600  # default of the idle portals' sweep interval (BITRIX_IDLE_SWEEP_MINUTES)
# A portal may read the ``>=DATE_CREATE`` filter in its own time zone whatever offset the stamp names (UTC-12 to
# UTC+14): the filter is opened this much earlier, and each row's own ``DATE_CREATE`` (which names its offset) decides.
BITRIX_ZONE_SLACK_SECONDS = 14 * 3600


class Ledger(Protocol):
    def seen(self, lead_keys: list[str]) -> set[str]: ...


class Inbox(Protocol):
    def send_many(self, messages: list[InboxMessage]) -> None: ...


@dataclass(frozen=True, slots=True)
class SweepPosition:
    """A window being listed: when it was opened (the watermark it sets once listed to its end), its bounds, and
    where each list goes on (Bitrix24: the last id read per entity; amoCRM: the next page of the events log)."""

    opened_at: int
    since: int
    until: int | None = None  # amoCRM: the window's fixed upper bound, so its pages stay where they were
    after: dict[str, int] = field(default_factory=dict)
    done: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "done": list(self.done)}

    @classmethod
    def from_record(cls, record: Any) -> SweepPosition | None:
        if not isinstance(record, dict):
            return None
        try:
            return cls(
                opened_at=int(record["opened_at"]),
                since=int(record["since"]),
                until=int(record["until"]) if record.get("until") is not None else None,
                after={str(k): int(v) for k, v in dict(record.get("after") or {}).items()},
                done=tuple(str(d) for d in record.get("done") or ()),
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            return None  # unreadable: a new window is opened


@dataclass(frozen=True, slots=True)
class SweepReport:
    integration_id: str
    listed: int
    already_known: int
    enqueued: int
    complete: bool
    unreadable: int = 0  # talks the token may not read (or that answered no JSON): skipped, the window goes on


@dataclass(slots=True)
class _Tally:
    listed: int = 0
    known: int = 0
    enqueued: int = 0
    unreadable: int = 0

    def report(self, integration_id: str, complete: bool) -> SweepReport:
        return SweepReport(integration_id, self.listed, self.known, self.enqueued, complete, unreadable=self.unreadable)


def new_window(watermark: int | None, now: float, settle: int = 0) -> SweepPosition:
    since = (watermark - OVERLAP_SECONDS) if watermark else int(now) - FIRST_WINDOW_SECONDS
    return SweepPosition(opened_at=int(now), since=since, until=(int(now) - settle) if settle else None)


def _enqueue_missing(ledger: Ledger, inbox: Inbox, found: list[InboxMessage], tally: _Tally) -> None:
    known = ledger.seen([m.lead_key for m in found])
    missing = [m for m in found if m.lead_key not in known]
    if missing:
        inbox.send_many(missing)
    tally.listed += len(found)
    tally.known += len(found) - len(missing)
    tally.enqueued += len(missing)


def sweep_bitrix24(
    integration: Integration,
    client: BitrixClient,
    ledger: Ledger,
    inbox: Inbox,
    position: SweepPosition,
    now: float,
    time_left: Callable[[], float],
    save: Callable[[SweepPosition, SweepReport], None],
    pace: Callable[[], object] = lambda: None,
) -> SweepReport:
    member_id = integration.account_id
    tally = _Tally()
    if member_id is None:
        return tally.report(integration.integration_id, complete=False)
    for entity in EVENTS:
        pages = 0
        while entity not in position.done:
            if pages >= MAX_PAGES_PER_ENTITY or time_left() < PAGE_RESERVE_SECONDS:
                save(position, tally.report(integration.integration_id, complete=False))
                return tally.report(integration.integration_id, complete=False)
            pace()
            since = position.since - BITRIX_ZONE_SLACK_SECONDS
            page = bitrix_created_page(client, entity, since, None, position.after.get(entity, 0))
            pages += 1
            found = [
                bitrix_entity_message(integration, member_id, entity, row, now, source="sweep")
                for row in page
                if _created_since(row, position.since)
            ]
            _enqueue_missing(ledger, inbox, found, tally)
            if len(page) < BITRIX_PAGE:
                position = replace(position, done=(*position.done, entity))
            else:
                last_id = max(int(str(as_id(row["ID"]))) for row in page)
                position = replace(position, after={**position.after, entity: last_id})
            if len(position.done) < len(EVENTS):  # the last page of the window needs no position: it is finished
                save(position, tally.report(integration.integration_id, complete=False))
    return tally.report(integration.integration_id, complete=True)


def _created_since(row: dict[str, Any], since: int) -> bool:
    created = iso_time(row.get("DATE_CREATE"))
    return created is None or created.timestamp() >= since  # an unreadable date is listed: the ledger dedups


def sweep_amocrm(
    integration: Integration,
    client: AmoClient,
    ledger: Ledger,
    inbox: Inbox,
    position: SweepPosition,
    now: float,
    time_left: Callable[[], float],
    save: Callable[[SweepPosition, SweepReport], None],
    pace: Callable[[], object] = lambda: None,
) -> SweepReport:
    account_id = integration.account_id
    tally = _Tally()
    if account_id is None:
        return tally.report(integration.integration_id, complete=False)
    until = position.until if position.until is not None else int(now) - AMO_SETTLE_SECONDS
    seen_talks: set[str] = set()
    for _ in range(AMO_MAX_PAGES):
        if time_left() < PAGE_RESERVE_SECONDS:
            break
        page_number = position.after.get("page", 1)
        pace()
        talk_ids, more = amo_talks_page(client, position.since, until, page_number)
        talk_ids = [t for t in talk_ids if t not in seen_talks]
        seen_talks.update(talk_ids)
        keys = {f"amocrm:{account_id}:talk:{talk_id}": talk_id for talk_id in talk_ids}
        known = ledger.seen(list(keys))
        missing: list[InboxMessage] = []
        for key, talk_id in keys.items():
            if key in known:
                continue
            if time_left() < PAGE_RESERVE_SECONDS:  # this page is read again next time; the ledger dedups
                if missing:
                    inbox.send_many(missing)
                tally.enqueued += len(missing)
                save(position, tally.report(integration.integration_id, complete=False))
                return tally.report(integration.integration_id, complete=False)
            try:
                pace()
                talk = client.get_talk(talk_id)
            except NotFound:
                continue
            except (InsufficientRights, BadResponse, BadRequest) as exc:  # this talk only: skipped and counted
                logger.info("sweep talk unreadable", extra={"talk_id": talk_id, "error": type(exc).__name__})
                tally.unreadable += 1
                continue
            except CrmError:  # the talks read so far are kept; the page is read again next time (the ledger dedups)
                if missing:
                    inbox.send_many(missing)
                raise
            missing.append(amo_talk_message(integration, account_id, talk_id, talk, now, source="sweep"))
        if missing:
            inbox.send_many(missing)
        tally.listed += len(keys)
        tally.known += len(known & keys.keys())
        tally.enqueued += len(missing)
        if not more:
            return tally.report(integration.integration_id, complete=True)
        position = replace(position, after={"page": page_number + 1})
        save(position, tally.report(integration.integration_id, complete=False))
    save(position, tally.report(integration.integration_id, complete=False))
    return tally.report(integration.integration_id, complete=False)


def idle_rule_applies(now: float, last_finished_at: int, window_open: bool, idle_seconds: int) -> bool:
    """Whether a Bitrix24 portal whose access token has lapsed waits for its idle interval instead of this run.

    A Bitrix24 access token lives an hour: sweeping every 15 minutes a portal nobody else calls would cost 24 token
    calls a day for it alone. So a portal with no live token is swept once per ``idle_seconds``; one with live
    traffic (its token kept fresh by the worker) every run, at no token cost. A first sweep, or a window left open
    by the last job, is never put off."""
    return bool(last_finished_at) and not window_open and now - last_finished_at < idle_seconds


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """What one integration's sweep job did: ``kind`` is sweep, probe or idle (a Bitrix24 portal left for later)."""

    kind: str
    report: SweepReport | None = None
    drift: DriftReading | None = None
    detail: str = ""


class Reconciler:
    """The sweep (or the blocked-account probe) of one integration, as one scheduled job."""

    def __init__(
        self,
        integrations: DynamoIntegrations,
        ledger: Ledger,
        inbox: Inbox,
        tokens: TokenProvider,
        parking: Parking,
        budgets: Budgets,
        share: float = 1.0,
        bitrix_idle_sweep_seconds: int = BITRIX_IDLE_SWEEP_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budgets = budgets
        self.parking = parking
        self.integrations = integrations
        self.ledger = ledger
        self.inbox = inbox
        self.tokens = tokens
        self.share = share
        self.bitrix_idle_sweep_seconds = bitrix_idle_sweep_seconds
        self.clock = clock

    def sweep(self, integration: Integration, status: dict[str, Any], time_left: Callable[[], float]) -> SweepOutcome:
        """Sweep one active integration under its lease; CRM errors propagate (the job fails and is retried)."""
        if status.get("connection_state") == "blocked":
            return self._probe_blocked(integration)
        now = self.clock()
        if integration.crm == "bitrix24" and self._idle(integration, status, now):
            return SweepOutcome("idle", detail="token lapsed and swept recently: the idle interval applies")
        if not self.integrations.take_lease(integration.integration_id, "sweep", int(now), SWEEP_LEASE_SECONDS):
            return SweepOutcome("sweep", detail="another job sweeps this integration")
        try:
            return self._sweep(integration, status, now, time_left)
        finally:
            self.integrations.release_lease(integration.integration_id, "sweep")

    def _idle(self, integration: Integration, status: dict[str, Any], now: float) -> bool:
        last = int(status.get("sweep_finished_at") or 0)
        if not idle_rule_applies(now, last, bool(status.get("sweep_position")), self.bitrix_idle_sweep_seconds):
            return False
        return not self.tokens.has_live_access(integration)

    def _sweep(
        self, integration: Integration, status: dict[str, Any], now: float, time_left: Callable[[], float]
    ) -> SweepOutcome:
        limiter = self.budgets.for_integration(integration)
        share = self.budgets.for_backfill(integration, self.share)  # scheduled work's share of the CRM's budget
        integration_id = integration.integration_id
        settle = AMO_SETTLE_SECONDS if integration.crm == "amocrm" else 0
        position = SweepPosition.from_record(status.get("sweep_position")) or new_window(
            status.get("sweep_watermark"), now, settle
        )

        def save(at: SweepPosition, report: SweepReport) -> None:
            self.integrations.save_sweep_position(integration_id, at.to_record(), asdict(report))

        drift: DriftReading | None = None
        if integration.crm == "amocrm":
            amo = AmoClient(integration, self.tokens, limiter)
            report = sweep_amocrm(
                integration, amo, self.ledger, self.inbox, position, now, time_left, save, share.acquire
            )
            if time_left() >= PAGE_RESERVE_SECONDS:
                drift = self._check_drift(integration, amo, status, int(now))
        else:
            client = BitrixClient(integration, self.tokens, limiter)
            report = sweep_bitrix24(
                integration, client, self.ledger, self.inbox, position, now, time_left, save, share.acquire
            )
        if report.complete:
            self.integrations.finish_sweep(integration_id, position.opened_at, int(self.clock()), asdict(report))
        logger.info("sweep", extra=asdict(report))
        return SweepOutcome("sweep", report, drift)

    def _check_drift(
        self, integration: Integration, client: AmoClient, status: dict[str, Any], now: int
    ) -> DriftReading | None:
        """Once an hour: chats in Unsorted since the last check against the leads emitted since (amocrm/drift.py)."""
        mark = DriftMark.from_status(status)
        if not due(mark, now):
            return None
        emitted = int(status.get("count_emitted", 0))
        if mark is None:
            self.integrations.set_drift_mark(integration.integration_id, now, emitted)
            return None
        try:
            chats = client.unsorted_chats(mark.at, now)
        except CrmError as exc:  # the sweep itself went through; the next run checks again
            logger.info("drift check skipped", extra={"integration_id": integration.integration_id, "error": str(exc)})
            return None
        reading = DriftReading(since=mark.at, until=now, unsorted_chats=chats, emitted=emitted - mark.emitted)
        self.integrations.set_drift_mark(
            integration.integration_id, now, emitted, {**asdict(reading), "missing": reading.missing}
        )
        if reading.missing:
            logger.warning(
                "unsorted chats without a lead", extra={"integration_id": integration.integration_id, **asdict(reading)}
            )
        return reading

    def _probe_blocked(self, integration: Integration) -> SweepOutcome:
        """One cheap read (amoCRM: the account; Bitrix24: ``app.info``): when the CRM answers again, the
        integration's parked events go back in."""
        limiter = self.budgets.for_integration(integration)
        try:
            if integration.crm == "amocrm":
                AmoClient(integration, self.tokens, limiter).get_account()
            else:
                BitrixClient(integration, self.tokens, limiter).probe()
        except CrmError as exc:
            logger.info(
                "account still blocked",
                extra={"integration_id": integration.integration_id, "error": type(exc).__name__},
            )
            return SweepOutcome("probe", detail=f"still blocked: {type(exc).__name__}")
        self.integrations.set_connection_state(integration.integration_id, "connected")
        self.parking.resume(integration.integration_id)
        return SweepOutcome("probe", detail="answering again: connected, parked events resumed")

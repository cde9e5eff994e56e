"""The reconciliation sweep: what the CRM created recently that no webhook brought in.

Bitrix24 never resends a failed event, so every run lists the portal's leads and deals created since the
integration's watermark (minus an overlap), pages through them by id, and enqueues each one the ledger has never
seen, exactly as a webhook would (``source = sweep``). The worker's ledger claim makes a sweep and a late webhook
for the same lead one lead. Requests go through the same client, shared budget and token store as the worker.

amoCRM retries a failed webhook for about 1.5 hours and then gives up, and its REST API cannot list talks; but its
events log can (reference/amocrm-chats-events-dp.md A.1): every run lists the account's ``incoming_chat_message``
events since the watermark (minus the overlap; pages of 100; the last minute is left to the webhooks on their way),
collects their talks, and reads and enqueues each talk the ledger never saw, as a ``talk.add`` webhook would be.

The same run probes every amoCRM integration whose account was blocked (one ``GET /api/v4/account``): when the API
answers again, the integration is connected and its parked events are resumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from leadbridge.amocrm.client import AmoClient
from leadbridge.amocrm.drift import DriftMark, DriftReading, due
from leadbridge.bitrix24.client import BitrixClient
from leadbridge.crm_values import as_id
from leadbridge.http.errors import CrmError, NotFound
from leadbridge.http.ratelimit import Budgets
from leadbridge.integration import Integration
from leadbridge.oauth.token_provider import TokenProvider
from leadbridge.parking import Parking
from leadbridge.queues import InboxMessage
from leadbridge.recovered_events import (
    BITRIX_PAGE,
    EVENTS,
    amo_talk_message,
    amo_talks_page,
    bitrix_created_page,
    bitrix_entity_message,
)
from leadbridge.store.integrations import DynamoIntegrations

logger = Logger(child=True)

OVERLAP_SECONDS = 15 * 60
FIRST_WINDOW_SECONDS = 6 * 3600
MAX_PAGES_PER_ENTITY = 40  # 2,000 entities a run; the rest waits for the next run (the watermark stays put)
AMO_SETTLE_SECONDS = 60  # the last minute's talks: their webhooks are probably still on their way
AMO_MAX_PAGES = 20  # 2,000 messages a run; the rest waits for the next run (the watermark stays put)


class Ledger(Protocol):
    def seen(self, lead_keys: list[str]) -> set[str]: ...


class Inbox(Protocol):
    def send_many(self, messages: list[InboxMessage]) -> None: ...


@dataclass(frozen=True, slots=True)
class SweepReport:
    integration_id: str
    listed: int
    already_known: int
    enqueued: int
    complete: bool


def sweep_bitrix24(
    integration: Integration,
    client: BitrixClient,
    ledger: Ledger,
    inbox: Inbox,
    watermark: int | None,
    now: float,
) -> SweepReport:
    member_id = integration.account_id
    if member_id is None:
        return SweepReport(integration.integration_id, 0, 0, 0, complete=False)
    since = (watermark - OVERLAP_SECONDS) if watermark else int(now) - FIRST_WINDOW_SECONDS
    found: list[InboxMessage] = []
    complete = True
    for entity in EVENTS:
        rows, entity_complete = _created_since(client, entity, since)
        complete = complete and entity_complete
        for row in rows:
            found.append(bitrix_entity_message(integration, member_id, entity, row, now, source="sweep"))
    known = ledger.seen([m.lead_key for m in found])
    missing = [m for m in found if m.lead_key not in known]
    if missing:
        inbox.send_many(missing)
    return SweepReport(integration.integration_id, len(found), len(found) - len(missing), len(missing), complete)


def sweep_amocrm(
    integration: Integration,
    client: AmoClient,
    ledger: Ledger,
    inbox: Inbox,
    watermark: int | None,
    now: float,
) -> SweepReport:
    account_id = integration.account_id
    if account_id is None:
        return SweepReport(integration.integration_id, 0, 0, 0, complete=False)
    since = (watermark - OVERLAP_SECONDS) if watermark else int(now) - FIRST_WINDOW_SECONDS
    until = int(now) - AMO_SETTLE_SECONDS
    talk_ids: list[str] = []
    complete = False
    for page in range(1, AMO_MAX_PAGES + 1):
        found, more = amo_talks_page(client, since, until, page)
        talk_ids.extend(t for t in found if t not in talk_ids)
        if not more:
            complete = True
            break
    keys = {f"amocrm:{account_id}:talk:{talk_id}": talk_id for talk_id in talk_ids}
    known = ledger.seen(list(keys))
    missing: list[InboxMessage] = []
    for key, talk_id in keys.items():
        if key in known:
            continue
        try:
            talk = client.get_talk(talk_id)
        except NotFound:
            continue
        missing.append(amo_talk_message(integration, account_id, talk_id, talk, now, source="sweep"))
    if missing:
        inbox.send_many(missing)
    return SweepReport(integration.integration_id, len(keys), len(keys) - len(missing), len(missing), complete)


def _created_since(client: BitrixClient, entity: str, since: int) -> tuple[list[dict[str, Any]], bool]:
    rows: list[dict[str, Any]] = []
    after_id = 0
    for _ in range(MAX_PAGES_PER_ENTITY):
        page = bitrix_created_page(client, entity, since, None, after_id)
        rows.extend(page)
        if len(page) < BITRIX_PAGE:
            return rows, True
        after_id = max(int(str(as_id(row["ID"]))) for row in page)
    return rows, False


@dataclass(frozen=True, slots=True)
class SweepRun:
    reports: list[SweepReport]
    failed: list[str]  # integration ids whose sweep failed this run (logged, counted, alarmed)
    drift: list[tuple[str, DriftReading]] = field(default_factory=list)  # amoCRM drift checks made this run

    @property
    def unsorted_chats_without_lead(self) -> int:
        return sum(reading.missing for _, reading in self.drift)


class Reconciler:
    """One scheduled run over every active integration; whatever fails for one of them never stops the others."""

    def __init__(
        self,
        integrations: DynamoIntegrations,
        ledger: Ledger,
        inbox: Inbox,
        tokens: TokenProvider,
        parking: Parking,
        budgets: Budgets,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budgets = budgets
        self.parking = parking
        self.integrations = integrations
        self.ledger = ledger
        self.inbox = inbox
        self.tokens = tokens
        self.clock = clock
        self._drift: list[tuple[str, DriftReading]] = []

    def run(self) -> SweepRun:
        reports: list[SweepReport] = []
        failed: list[str] = []
        self._drift = []
        for integration in self.integrations.list_all():
            if not integration.active:
                continue
            try:
                report = self._one(integration)
            except Exception as exc:
                logger.warning(
                    "sweep failed", extra={"integration_id": integration.integration_id, "error": type(exc).__name__}
                )
                failed.append(integration.integration_id)
                continue
            if report is not None:
                logger.info("sweep done", extra=asdict(report))
                reports.append(report)
        return SweepRun(reports, failed, self._drift)

    def _one(self, integration: Integration) -> SweepReport | None:
        status = self.integrations.status(integration.integration_id)
        if status.get("connection_state") == "blocked":
            self._probe_blocked(integration)
            return None
        now = self.clock()
        limiter = self.budgets.for_integration(integration)
        watermark = status.get("sweep_watermark")
        if integration.crm == "amocrm":
            amo = AmoClient(integration, self.tokens, limiter)
            report = sweep_amocrm(integration, amo, self.ledger, self.inbox, watermark, now)
            self._check_drift(integration, amo, status, int(now))
        else:
            client = BitrixClient(integration, self.tokens, limiter)
            report = sweep_bitrix24(integration, client, self.ledger, self.inbox, watermark, now)
        if report.complete:
            self.integrations.set_sweep_watermark(integration.integration_id, int(now))
        return report

    def _check_drift(self, integration: Integration, client: AmoClient, status: dict[str, Any], now: int) -> None:
        """Once an hour: chats in Unsorted since the last check against the leads emitted since (amocrm/drift.py)."""
        mark = DriftMark.from_status(status)
        if not due(mark, now):
            return
        emitted = int(status.get("count_emitted", 0))
        if mark is None:
            self.integrations.set_drift_mark(integration.integration_id, now, emitted)
            return
        try:
            chats = client.unsorted_chats(mark.at, now)
        except CrmError as exc:  # the sweep itself went through; the next run checks again
            logger.info("drift check skipped", extra={"integration_id": integration.integration_id, "error": str(exc)})
            return
        reading = DriftReading(since=mark.at, until=now, unsorted_chats=chats, emitted=emitted - mark.emitted)
        self.integrations.set_drift_mark(
            integration.integration_id, now, emitted, {**asdict(reading), "missing": reading.missing}
        )
        if reading.missing:
            logger.warning(
                "unsorted chats without a lead", extra={"integration_id": integration.integration_id, **asdict(reading)}
            )
        self._drift.append((integration.integration_id, reading))

    def _probe_blocked(self, integration: Integration) -> None:
        """One read of the account: when amoCRM answers again, the integration's parked events go back in."""
        if integration.crm != "amocrm":
            return
        try:
            AmoClient(integration, self.tokens, self.budgets.for_integration(integration)).get_account()
        except CrmError as exc:
            logger.info(
                "account still blocked",
                extra={"integration_id": integration.integration_id, "error": type(exc).__name__},
            )
            return
        self.integrations.set_connection_state(integration.integration_id, "connected")
        self.parking.resume(integration.integration_id)

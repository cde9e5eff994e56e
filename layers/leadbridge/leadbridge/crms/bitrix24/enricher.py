"""The worker's Bitrix24 enricher: events of one portal share ``batch`` calls, within the portal's shared budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Protocol

from aws_lambda_powertools import Logger

from leadbridge.aws.queues import InboxMessage
from leadbridge.aws.store.ledger import LedgerEntry
from leadbridge.contract.integration import Integration
from leadbridge.crms.bitrix24.client import BatchResult, BitrixClient
from leadbridge.crms.bitrix24.enrich import (
    COMMANDS_PER_EVENT,
    ActivityMissing,
    HistoryRefused,
    NotFromOpenLines,
    build_bitrix_lead,
    commands,
    known_other_keys,
)
from leadbridge.crms.enrichment import Emission, NotReadyYet, Skip, overlapped
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.http.ratelimit import Budgets, backoff_seconds

logger = Logger(child=True)

EVENTS_PER_BATCH = 50 // COMMANDS_PER_EVENT
HISTORY_REFUSED = "history_refused"  # a lead emitted without its transcript and session: the token may not read it


class PortalMoves(Protocol):
    def record_portal_moved(self, integration_id: str, account_id: str, old_domain: str, new_domain: str) -> None: ...


class BitrixEnricher:
    def __init__(
        self,
        tokens: TokenProvider,
        budgets: Budgets,
        activity_wait_seconds: int,
        clock: Callable[[], float] = time.time,
        moves: PortalMoves | None = None,
    ) -> None:
        self.tokens = tokens
        self.budgets = budgets
        self.activity_wait_seconds = activity_wait_seconds
        self.clock = clock
        self.moves = moves
        self._prefetched: dict[str, tuple[BatchResult, str]] = {}
        self._moved: dict[str, str] = {}  # integration id -> the portal's new domain, learnt in this process
        self.requests_made = 0
        self._counting = threading.Lock()

    def client(self, integration: Integration) -> BitrixClient:
        moved = self._moved.get(integration.integration_id)
        if moved is not None and moved != integration.crm_domain.lower():
            integration = replace(integration, crm_domain=moved)
        return BitrixClient(integration, self.tokens, self.budgets.for_integration(integration))

    def _batch(self, client: BitrixClient, cmd: dict[str, str]) -> BatchResult:
        try:
            return client.batch(cmd)
        finally:
            with self._counting:  # portals are read at the same time (``overlapped``)
                self.requests_made += client.requests_made
            if client.moved_to is not None:
                self._portal_moved(client.integration, client.moved_to)

    def _portal_moved(self, integration: Integration, new_domain: str) -> None:
        """The admin renamed the portal (its old address redirected REST): keep the new address, and say so."""
        old = integration.crm_domain.lower()
        if new_domain == old or self._moved.get(integration.integration_id) == new_domain:
            return
        self._moved[integration.integration_id] = new_domain
        logger.info("Bitrix24 portal moved", extra={"integration_id": integration.integration_id, "to": new_domain})
        if self.moves is not None and integration.account_id:
            self.moves.record_portal_moved(integration.integration_id, integration.account_id, old, new_domain)

    def prepare(self, batch: list[tuple[InboxMessage, Integration]]) -> None:
        """Read every event of the batch in as few requests as the API allows (12 events per ``batch`` call)."""
        self._prefetched.clear()
        by_integration: dict[str, list[tuple[InboxMessage, Integration]]] = {}
        for message, integration in batch:
            by_integration.setdefault(integration.integration_id, []).append((message, integration))
        overlapped([partial(self._prefetch, group) for group in by_integration.values()])

    def _prefetch(self, group: list[tuple[InboxMessage, Integration]]) -> int:
        """One portal's events, 12 to a ``batch`` call, one call after another (the portal's budget); 0: its
        requests are counted as they are made (``_batch``)."""
        unique = list({m.lead_key: (m, i) for m, i in group}.values())
        for start in range(0, len(unique), EVENTS_PER_BATCH):
            chunk = unique[start : start + EVENTS_PER_BATCH]
            cmd: dict[str, str] = {}
            prefixes: dict[str, str] = {}
            for index, (message, _) in enumerate(chunk):
                prefix = f"x{index}_"
                prefixes[message.lead_key] = prefix
                cmd.update(commands(message, prefix))
            result = self._batch(self.client(chunk[0][1]), cmd)
            for key, prefix in prefixes.items():
                self._prefetched[key] = (result, prefix)
        return 0

    def build(self, message: InboxMessage, integration: Integration, entry: LedgerEntry) -> Emission | Skip:
        if message.entity_type not in {"lead", "deal"}:
            return Skip(reason=f"unsupported Bitrix24 entity {message.entity_type}")
        prefetched = self._prefetched.pop(message.lead_key, None)
        if prefetched is None:
            prefetched = (self._batch(self.client(integration), commands(message, "x0_")), "x0_")
        batch, prefix = prefetched
        waited = self.clock() - entry.first_seen_at
        built = build_bitrix_lead(
            message, integration, batch, prefix, give_up_waiting=waited >= self.activity_wait_seconds
        )
        if isinstance(built, NotFromOpenLines):
            return Skip(reason=f"not_from_open_lines: {built.reason}")
        if isinstance(built, ActivityMissing | HistoryRefused):
            delay = int(min(backoff_seconds(entry.attempts, 15, 120), max(5, self.activity_wait_seconds - waited)))
            if isinstance(built, HistoryRefused):  # the admin may grant it meanwhile; after the wait, out without it
                raise NotReadyYet(f"open-lines history refused ({built.code})", delay)
            raise NotReadyYet("open-lines activity not written yet", delay)
        facts: list[str] = []
        if built.activity_missing:
            facts.append("activity_missing")
        if built.history_refused:
            facts.append(HISTORY_REFUSED)
        if not built.connector_known:
            facts.append("unknown_connector")
        return Emission(lead=built.lead, notes=tuple(facts), also_claims=built.also_claims)

    def ledger_keys_ahead(self, messages: list[InboxMessage]) -> list[str]:
        return []

    def other_keys(self, message: InboxMessage) -> tuple[str, ...]:
        prefetched = self._prefetched.get(message.lead_key)
        if prefetched is None or message.entity_type not in {"lead", "deal"}:
            return ()
        return known_other_keys(message, *prefetched)

    def finish_batch(self) -> list[tuple[str, str]]:
        return []

    def absorb(self, message: InboxMessage, integration: Integration) -> None:
        """Bitrix24 sends no event that feeds a conversation (its transcript is read with the lead)."""

    def follow_up(self, message: InboxMessage, finished: LedgerEntry) -> InboxMessage | None:
        """A Bitrix24 lead or deal is one conversation for good."""
        return None

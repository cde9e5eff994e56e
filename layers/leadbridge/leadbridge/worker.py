"""One inbox event -> at most one lead, exactly once per conversation.

For each event: claim the conversation in the ledger (a duplicate of a finished one ends here), build the lead
through the CRM's enricher, publish it (deduplication id = lead id), record the outcome. Errors are sorted into
"try again later" (``RetryLater``: the message comes back after a backoff, and after the queue's receive limit it
lands in the DLQ), "never" (``PoisonEvent``: straight to the DLQ with its reason) and "nothing to emit"
(``Skip``: recorded in the ledger with its reason).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from aws_lambda_powertools import Logger

from leadbridge.http.errors import (
    AccessTokenRejected,
    AccountBlocked,
    BadRequest,
    CrmError,
    CrmUnavailable,
    GrantRevoked,
    NotConnected,
    NotFound,
    RateLimited,
)
from leadbridge.http.ratelimit import backoff_seconds
from leadbridge.integration import Integration
from leadbridge.lead import NormalizedLead, lead_id_for
from leadbridge.queues import InboxMessage
from leadbridge.store.integrations import Outcome
from leadbridge.store.ledger import AlreadyFinal, Claimed, HeldElsewhere, LedgerEntry, LedgerState

logger = Logger(child=True)

WAIT_FOR_REAUTH_SECONDS = 900
WAIT_WHEN_BLOCKED_SECONDS = 900


class RetryLater(Exception):
    def __init__(self, reason: str, delay_seconds: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds


class PoisonEvent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


@dataclass(frozen=True, slots=True)
class Emission:
    lead: NormalizedLead
    after_emit: Callable[[], str] | None = None  # e.g. the amoCRM note; returns a short state for the ledger
    notes: tuple[str, ...] = ()  # facts for the ledger ("activity_missing", "unknown_origin"...)


class Enricher(Protocol):
    def prepare(self, batch: list[tuple[InboxMessage, Integration]]) -> None:
        """Fetch what several events of one batch can share (Bitrix24 ``batch`` calls)."""
        ...

    def build(self, message: InboxMessage, integration: Integration, entry: LedgerEntry) -> Emission | Skip: ...


class IntegrationSource(Protocol):
    def get(self, integration_id: str) -> Integration | None: ...


class Ledger(Protocol):
    def claim(
        self, lead_key: str, lead_id: str, integration_id: str, source: str, now: int | None = None
    ) -> Claimed | AlreadyFinal | HeldElsewhere: ...

    def finish(self, lead_key: str, state: LedgerState, **fields: object) -> None: ...

    def set_fields(self, lead_key: str, **fields: object) -> None: ...


class LeadPublisher(Protocol):
    def publish(self, lead_json: str, lead_id: str, integration_id: str) -> str: ...


class StatusRecorder(Protocol):
    def record_outcome(self, integration_id: str, outcome: Outcome, error: str | None = None) -> None: ...

    def set_connection_state(
        self, integration_id: str, state: Literal["blocked"], reason: str | None = None
    ) -> None: ...


class Counter(Protocol):
    def __call__(self, name: str, value: int = 1) -> None: ...


WorkOutcome = Literal["emitted", "skipped", "duplicate", "integration_gone"]


class LeadWorker:
    def __init__(
        self,
        integrations: IntegrationSource,
        status: StatusRecorder,
        ledger: Ledger,
        leads: LeadPublisher,
        enrichers: dict[str, Enricher],
        count: Counter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.integrations = integrations
        self.status = status
        self.ledger = ledger
        self.leads = leads
        self.enrichers = enrichers
        self.count = count
        self.clock = clock

    def prepare(self, messages: list[InboxMessage]) -> None:
        by_crm: dict[str, list[tuple[InboxMessage, Integration]]] = {}
        for message in messages:
            integration = self.integrations.get(message.integration_id)
            if integration is not None and integration.active and message.crm in self.enrichers:
                by_crm.setdefault(message.crm, []).append((message, integration))
        for crm, batch in by_crm.items():
            try:
                self.enrichers[crm].prepare(batch)
            except CrmError as exc:  # each event will meet the same error on its own and be handled there
                logger.warning("batch prefetch failed", extra={"crm": crm, "error": type(exc).__name__})

    def handle(self, message: InboxMessage, receive_count: int = 1) -> WorkOutcome:
        integration = self.integrations.get(message.integration_id)
        if integration is None or not integration.active:
            self.count("EventsForGoneIntegration")
            return "integration_gone"
        enricher = self.enrichers.get(message.crm)
        if enricher is None:
            raise PoisonEvent(f"no enricher for crm {message.crm!r}")
        key = message.lead_key
        lead_id = lead_id_for(key)
        claim = self.ledger.claim(key, lead_id, integration.integration_id, message.source)
        if isinstance(claim, AlreadyFinal):
            self.count("DuplicateEvents")
            return "duplicate"
        if isinstance(claim, HeldElsewhere):
            raise RetryLater("conversation held by another attempt", max(5, claim.lease_until - int(self.clock())))
        self.status.record_outcome(integration.integration_id, "accepted")
        try:
            result = enricher.build(message, integration, claim.entry)
        except NotFound as exc:
            result = Skip(reason=f"crm_entity_not_found: {exc}")
        except (GrantRevoked, NotConnected) as exc:
            self._retry(key, integration, f"not_authorized: {exc}", WAIT_FOR_REAUTH_SECONDS)
        except AccountBlocked as exc:
            self.status.set_connection_state(integration.integration_id, "blocked", str(exc))
            self.count("CrmAccountBlocked")
            self._retry(key, integration, f"account_blocked: {exc}", WAIT_WHEN_BLOCKED_SECONDS)
        except RateLimited as exc:
            self.count("CrmRateLimited")
            self._retry(key, integration, f"rate_limited: {exc}", max(1, int(exc.retry_after)))
        except (CrmUnavailable, AccessTokenRejected) as exc:
            self._retry(key, integration, f"crm_unavailable: {exc}", int(backoff_seconds(receive_count, 5, 300)))
        except BadRequest as exc:
            self.ledger.finish(key, "failed", last_error=f"bad_request: {exc}")
            self.status.record_outcome(integration.integration_id, "failed", f"bad_request: {exc}")
            raise PoisonEvent(f"bad_request: {exc}") from exc
        except NotReadyYet as exc:
            self.ledger.finish(key, "waiting", last_error=exc.reason)
            raise RetryLater(exc.reason, exc.delay_seconds) from exc

        if isinstance(result, Skip):
            self.ledger.finish(key, "skipped", skip_reason=result.reason)
            self.status.record_outcome(integration.integration_id, "skipped")
            self.count("LeadsSkipped")
            return "skipped"

        lead = result.lead
        message_id = self.leads.publish(lead.model_dump_json(), lead.lead_id, integration.integration_id)
        self.ledger.finish(
            key, "emitted", emitted_at=int(self.clock()), leads_message_id=message_id, facts=list(result.notes) or None
        )
        self.status.record_outcome(integration.integration_id, "emitted")
        self.count("LeadsEmitted")
        for fact in result.notes:
            self.count(f"Fact_{fact}")
        if result.after_emit is not None:
            self._after_emit(key, result.after_emit)
        return "emitted"

    def _retry(self, key: str, integration: Integration, reason: str, delay: int) -> None:
        self.ledger.finish(key, "failed", last_error=reason)
        self.status.record_outcome(integration.integration_id, "failed", reason)
        raise RetryLater(reason, delay)

    def _after_emit(self, key: str, action: Callable[[], str]) -> None:
        """Side effects after the lead is out (the amoCRM note): best effort, recorded, never re-emitting."""
        try:
            state = action()
        except CrmError as exc:
            state = f"failed: {type(exc).__name__}"
            logger.warning("after-emit action failed", extra={"error": type(exc).__name__})
        self.ledger.set_fields(key, note_state=state)


class NotReadyYet(Exception):
    """The CRM has not finished writing what the lead needs (Bitrix24's open-lines activity)."""

    def __init__(self, reason: str, delay_seconds: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds

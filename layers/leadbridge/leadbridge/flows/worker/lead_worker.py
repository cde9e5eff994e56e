"""One inbox event -> at most one lead, exactly once per conversation.

For each event: claim the conversation in the ledger (a duplicate of a finished one ends here), build the lead
through the CRM's enricher, publish it (deduplication id = lead id), record the outcome. In a batch, what its
events will read is read ahead first (``BatchReads``), and its leads are published together at its end
(``send_batch_leads``; an event about a conversation whose lead still waits sends them first). Errors are sorted into
"try again later" (``RetryLater``: the message comes back after a backoff, and after the queue's receive limit it
lands in the DLQ), "wait for a person" (re-authorization, a blocked account: the event is parked out of the inbox
and resumed when the integration is connected again, see ``parking``), "never" (``PoisonEvent``: straight to the
DLQ with its reason) and "nothing to emit" (``Skip``: recorded in the ledger with its reason). Anything nobody
foresaw is "never" too: the ledger says ``failed`` with the exception's type, the event goes to the DLQ at once
with that reason, a log line names the type and where it was raised (never its message, which may hold values),
and the integration's next event goes on; an AWS error is "try again later".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.queues import InboxMessage, OutgoingLead
from leadbridge.aws.store.integrations import Outcome
from leadbridge.aws.store.ledger import (
    FINAL_STATES,
    AlreadyFinal,
    ClaimAsRead,
    Claimed,
    HeldElsewhere,
    LedgerEntry,
    LedgerState,
)
from leadbridge.contract.integration import Integration
from leadbridge.contract.lead import Backfill, NormalizedLead, fit_for_queue, lead_id_for
from leadbridge.crms.enrichment import Emission, Enricher, NotReadyYet, PoisonEvent, RetryLater, Skip
from leadbridge.http.errors import (
    AccessTokenRejected,
    AccountBlocked,
    BadRequest,
    BadResponse,
    CrmError,
    CrmUnavailable,
    GrantRevoked,
    InsufficientRights,
    NotConnected,
    NotFound,
    RateLimited,
)
from leadbridge.http.ratelimit import backoff_seconds

logger = Logger(child=True)


class IntegrationSource(Protocol):
    def get(self, integration_id: str) -> Integration | None: ...


class Ledger(Protocol):
    def claim(
        self, lead_key: str, lead_id: str, integration_id: str, source: str, now: int | None = None
    ) -> Claimed | AlreadyFinal | HeldElsewhere: ...

    def claim_each(self, claims: list[ClaimAsRead], now: int | None = None) -> list[Claimed] | None: ...

    def unclaim(self, lead_keys: list[str], claimed_at: int) -> None: ...

    def finish(self, lead_key: str, state: LedgerState, **fields: object) -> None: ...

    def finish_all(self, lead_keys: list[str], state: LedgerState, **fields: object) -> None: ...

    def finish_each(self, outcomes: list[tuple[list[str], LedgerState, dict[str, Any]]]) -> bool: ...

    def set_fields(self, lead_key: str, **fields: object) -> None: ...

    def set_each(self, changes: list[tuple[str, dict[str, Any]]]) -> None: ...

    def finished(self, lead_keys: list[str]) -> set[str]: ...


class LeadPublisher(Protocol):
    def publish(self, lead_json: str, lead_id: str, integration_id: str) -> str: ...

    def publish_many(self, leads: list[OutgoingLead]) -> list[str | None]: ...


class StatusRecorder(Protocol):
    def record_outcome(self, integration_id: str, outcome: Outcome, error: str | None = None) -> None: ...

    def record_delivery(self, integration_id: str, delivered_at: float) -> None: ...

    def record_unknown_channel(self, integration_id: str, origin: str) -> None: ...

    def record_notice(self, integration_id: str, notice: str) -> None: ...

    def set_connection_state(
        self, integration_id: str, state: Literal["blocked", "insufficient_rights"], reason: str | None = None
    ) -> None: ...


class BatchReads(Protocol):
    def read(
        self, lead_keys: list[str], integration_ids: list[str], ledger_items: Sequence[str] = ()
    ) -> dict[str, LedgerEntry]:
        """Read ahead what the batch's integrations and ``ledger_items`` will need; the ledger entries of
        ``lead_keys`` that exist."""
        ...

    def end_batch(self) -> None: ...


class BatchScoped(Protocol):
    """Something that keeps what one batch read (a token) only while the batch lasts."""

    def begin_batch(self) -> None: ...

    def end_batch(self) -> None: ...


class Counter(Protocol):
    def __call__(self, name: str, value: int = 1) -> None: ...


class ParkingPlace(Protocol):
    def waiting_for(self, integration_id: str) -> tuple[str | None, float]: ...

    def park(self, message: InboxMessage, reason: str, decided_at: float) -> None: ...


# Facts about an account that an admin should see in its status (not about one lead).
STATUS_NOTICES = frozenset({"filtered_reads_refused", "history_refused"})

WorkOutcome = Literal["emitted", "skipped", "parked", "duplicate", "integration_gone", "kept"]
# Entity types that feed a conversation (or act for one) and are none themselves.
SIDE_INPUTS = frozenset(
    {"talk_message", "bot_continue", "site_chat_message", "channel_connect", "channel_disconnect", "channel_delivery"}
)
EMITTED_WRITE_PAUSES = (0.2, 0.5, 1.0, 2.0)  # seconds; the SDK's own retries come first
FRESH_DELIVERY_SECONDS = 600  # a delivery this recent stamps the checklist's last_webhook_at when handled
CLOCK_SKEW_SECONDS = 60  # the hook's clock may run ahead of the worker's
QUEUED = "queued"  # an after-emit action that only queued its work for the batch's end (amoCRM's notes)
HOOKS_REMOVAL = "hooks_unsubscribe"  # a deactivated integration's own webhook subscriptions, to remove from its CRM


@dataclass(frozen=True, slots=True)
class ReadyLead:
    """A lead built in a batch, waiting for the batch's send; ``keys``: the conversation's claimed ledger keys;
    ``message``: the event its record carried (a returning client's follow-up is built from another one)."""

    message: InboxMessage
    integration: Integration
    keys: list[str]
    lead: NormalizedLead
    result: Emission


class LeadWorker:
    def __init__(
        self,
        integrations: IntegrationSource,
        status: StatusRecorder,
        ledger: Ledger,
        leads: LeadPublisher,
        enrichers: dict[str, Enricher],
        count: Counter,
        parking: ParkingPlace,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        remove_hooks: Callable[[Integration], None] | None = None,
        reads: BatchReads | None = None,
        batch_scoped: Sequence[BatchScoped] = (),
    ) -> None:
        self.remove_hooks = remove_hooks
        self.reads = reads
        self.batch_scoped = batch_scoped
        self.parking = parking
        self.integrations = integrations
        self.status = status
        self.ledger = ledger
        self.leads = leads
        self.enrichers = enrichers
        self.count = count
        self.clock = clock
        self.sleep = sleep
        self._outbox: list[ReadyLead] | None = None  # a batch's leads, sent together; None: each sent at once
        self._failed_sends: list[tuple[InboxMessage, str]] = []
        self._handling: InboxMessage | None = None
        self._seen: dict[str, LedgerEntry | None] = {}  # the batch's ledger read: key -> entry (None: no item)
        self._held: dict[str, list[str]] = {}  # key -> the other keys claimed in the same write as it
        # The batch's conversations claimed in its first write, not handled yet: key -> (claim, its other keys).
        self._claimed_ahead: dict[str, tuple[Claimed, list[str]]] = {}
        self._claimed_ahead_at = 0

    def prepare(self, messages: list[InboxMessage]) -> None:
        """Let each CRM's enricher read what the batch's open conversations need, in as few requests as it can
        (duplicates of finished conversations, amoCRM's update_talk storms, need nothing)."""
        for scoped in self.batch_scoped:
            scoped.begin_batch()
        self._outbox, self._failed_sends, self._seen = [], [], {}
        keys = [m.lead_key for m in messages]
        try:
            if self.reads is not None:
                ahead = [
                    key
                    for crm, enricher in self.enrichers.items()
                    for key in enricher.ledger_keys_ahead([m for m in messages if m.crm == crm])
                ]
                entries = self.reads.read(keys, sorted({m.integration_id for m in messages}), ahead)
                finished = {key for key, entry in entries.items() if entry.state in FINAL_STATES}
                self._seen = {key: entries.get(key) for key in keys}
            else:
                finished = self.ledger.finished(keys)
        except (BotoCoreError, ClientError):
            finished = set()
        by_crm: dict[str, list[tuple[InboxMessage, Integration]]] = {}
        open_ones: list[tuple[InboxMessage, Integration]] = []
        for message in messages:
            if message.lead_key in finished or message.entity_type in SIDE_INPUTS:
                continue
            integration = self.integrations.get(message.integration_id)
            if integration is not None and integration.active and message.crm in self.enrichers:
                by_crm.setdefault(message.crm, []).append((message, integration))
                open_ones.append((message, integration))
        for crm, batch in by_crm.items():
            try:
                self.enrichers[crm].prepare(batch)
            except CrmError as exc:  # each event will meet the same error on its own and be handled there
                logger.warning("batch prefetch failed", extra={"crm": crm, "error": type(exc).__name__})
        self._claim_ahead(open_ones)

    def _claim_ahead(self, open_ones: list[tuple[InboxMessage, Integration]]) -> None:
        """Claim the batch's open conversations in one write, as the batch's read showed them (with the other keys
        a Bitrix24 prefetch named), instead of one write an event. Left out, to be claimed on their own: a
        conversation the read did not cover or saw held, and one whose keys an earlier event of the batch already
        names (a second event about it finds it emitted by the first). Refused as a whole (a key claimed or
        changed since the read), every event claims on its own, as before."""
        self._claimed_ahead = {}
        claims: list[ClaimAsRead] = []
        named: set[str] = set()
        for message, integration in open_ones:
            key = message.lead_key
            if key not in self._seen or message.entity_type == HOOKS_REMOVAL:
                continue
            seen = self._seen[key]
            if seen is not None and seen.state == "in_progress":
                continue  # held, or its lease ran out: the claim on its own says which
            others = sorted(set(self.enrichers[message.crm].other_keys(message)) - {key})
            if named & {key, *others}:
                continue
            named |= {key, *others}
            claims.append(
                ClaimAsRead(
                    key,
                    lead_id_for(key),
                    integration.integration_id,
                    message.source,
                    seen,
                    tuple((other, lead_id_for(other)) for other in others),
                )
            )
        if len(claims) < 2:  # one conversation: its own claim is one write too
            return
        claimed_at = int(time.time())
        try:
            claimed = self.ledger.claim_each(claims, now=claimed_at)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("the batch's conversations not claimed together", extra={"error": type(exc).__name__})
            return
        if claimed is None:
            return
        self._claimed_ahead_at = claimed_at
        for claim, result in zip(claims, claimed, strict=True):
            self._seen.pop(claim.lead_key, None)
            self._claimed_ahead[claim.lead_key] = (result, [other for other, _ in claim.others])

    def finish_batch(self) -> None:
        try:
            self._unclaim_unused()
            self._finish_batch()
        finally:
            for scoped in self.batch_scoped:
                scoped.end_batch()
            if self.reads is not None:
                self.reads.end_batch()

    def _unclaim_unused(self) -> None:
        """Claims taken ahead for events the batch handed back unhandled (the rest of a failed message group, or
        the invocation running out of time) are let go, so those events, back soon, are not held off by a lease."""
        unused = [key for key, (_, others) in self._claimed_ahead.items() for key in (key, *others)]
        self._claimed_ahead = {}
        if not unused:
            return
        try:
            self.ledger.unclaim(unused, self._claimed_ahead_at)
        except (BotoCoreError, ClientError) as exc:  # their leases run out in two minutes
            logger.warning("unused claims not let go", extra={"error": type(exc).__name__})

    def _finish_batch(self) -> None:
        for crm, enricher in self.enrichers.items():
            try:
                states = enricher.finish_batch()
            except Exception as exc:
                logger.warning("batch follow-up failed", extra={"crm": crm, "error": type(exc).__name__})
                continue
            try:
                self.ledger.set_each([(lead_key, {"note_state": state}) for lead_key, state in states])
            except (BotoCoreError, ClientError) as exc:  # bookkeeping after the leads are out: never fail them
                logger.warning("note state not recorded", extra={"crm": crm, "error": type(exc).__name__})

    def handle(self, message: InboxMessage, receive_count: int = 1) -> WorkOutcome:
        self._handling = message  # the record's own event, whatever follow-up it turns into
        self._held = {}
        try:
            return self._handle(message, receive_count)
        except (RetryLater, PoisonEvent):
            raise
        except (BotoCoreError, ClientError) as exc:  # DynamoDB or SQS refused for a moment: not the event's fault
            reason = f"aws_unavailable: {type(exc).__name__}"
            logger.warning("AWS call failed", extra={"error": type(exc).__name__})
            raise RetryLater(reason, int(backoff_seconds(receive_count, 2, 120))) from exc
        except Exception as exc:
            raise self._unexpected(message, exc) from exc

    def _stamp_delivery(self, message: InboxMessage) -> None:
        """The set-up checklist's ``last_webhook_at``, written with the batch's counters instead of by the hook (a
        request per delivery there). Only a delivery of the last minutes: a resumed or retried event is not news."""
        if message.source != "webhook":
            return
        try:
            delivered_at = datetime.fromisoformat(message.received_at).timestamp()
        except (TypeError, ValueError):
            return
        if -CLOCK_SKEW_SECONDS <= self.clock() - delivered_at <= FRESH_DELIVERY_SECONDS:
            self.status.record_delivery(message.integration_id, delivered_at)

    def _remove_hooks(self, integration: Integration, receive_count: int) -> WorkOutcome:
        """Deactivated: its own webhook subscriptions leave the CRM (then its tokens go). A CRM that cannot be
        reached now is tried again; one that refuses (the grant is dead, no admin rights) is left as it is."""
        if self.remove_hooks is None or integration.active:
            return "kept"
        try:
            self.remove_hooks(integration)
        except (RateLimited, CrmUnavailable, AccessTokenRejected) as exc:
            raise RetryLater(f"hooks not removed yet: {exc}", int(backoff_seconds(receive_count, 5, 300))) from exc
        except CrmError as exc:
            logger.info(
                "hooks left in the CRM", extra={"integration_id": integration.integration_id, "error": str(exc)}
            )
        return "kept"

    def _unexpected(self, message: InboxMessage, exc: Exception) -> PoisonEvent:
        reason = f"unexpected: {type(exc).__name__}"
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = f"{frame.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.tb_lineno}" if frame else "?"
        logger.error("unexpected error", extra={"error": type(exc).__name__, "where": where, "crm": message.crm})
        self.count("EventsFailedUnexpectedly")
        try:
            self._finish(message.lead_key, "failed", last_error=reason)
            self.status.record_outcome(message.integration_id, "failed", reason)
        except (BotoCoreError, ClientError):  # the DLQ message still carries the reason
            logger.warning("could not record the failure", extra={"error": type(exc).__name__})
        return PoisonEvent(reason)

    def _handle(self, message: InboxMessage, receive_count: int) -> WorkOutcome:
        started = self.clock()
        integration = self.integrations.get(message.integration_id)
        if message.entity_type == HOOKS_REMOVAL and integration is not None:
            return self._remove_hooks(integration, receive_count)
        if integration is None or not integration.active:
            self.count("EventsForGoneIntegration")
            return "integration_gone"
        self._stamp_delivery(message)
        enricher = self.enrichers.get(message.crm)
        if enricher is None:
            raise PoisonEvent(f"no enricher for crm {message.crm!r}")
        if message.entity_type in SIDE_INPUTS:
            enricher.absorb(message, integration)
            return "kept"
        key = message.lead_key
        lead_id = lead_id_for(key)
        claim = self._claim(message, integration, enricher, lead_id)
        if isinstance(claim, AlreadyFinal):
            again = enricher.follow_up(message, claim.entry)
            if again is not None and again.lead_key != key:
                return self._handle(again, receive_count)
            self.count("DuplicateEvents")
            return "duplicate"
        if isinstance(claim, HeldElsewhere):
            raise RetryLater("conversation held by another attempt", max(5, claim.lease_until - int(self.clock())))
        waiting, read_at = self.parking.waiting_for(integration.integration_id)
        if waiting is not None:  # no CRM call for an integration that waits for a person
            return self._park(message, integration, f"integration_{waiting}", read_at)
        if claim.entry.attempts == 1:  # a redelivery or a retry is the same event, accepted once
            self.status.record_outcome(integration.integration_id, "accepted")
        try:
            result = enricher.build(message, integration, claim.entry)
        except NotFound as exc:
            result = Skip(reason=f"crm_entity_not_found: {exc}")
        except (GrantRevoked, NotConnected) as exc:
            return self._park(message, integration, f"not_authorized: {exc}", started)
        except InsufficientRights as exc:  # an admin's to fix: parked, and no probe will resume it by itself
            self.status.set_connection_state(integration.integration_id, "insufficient_rights", str(exc))
            self.count("CrmInsufficientRights")
            return self._park(message, integration, f"insufficient_rights: {exc.refused}", started)
        except AccountBlocked as exc:
            self.status.set_connection_state(integration.integration_id, "blocked", str(exc))
            self.count("CrmAccountBlocked")
            return self._park(message, integration, f"account_blocked: {exc}", started)
        except RateLimited as exc:
            self.count("CrmRateLimited")
            self._retry(key, integration, f"rate_limited: {exc}", max(1, int(exc.retry_after)))
        except (CrmUnavailable, AccessTokenRejected) as exc:
            self._retry(key, integration, f"crm_unavailable: {exc}", int(backoff_seconds(receive_count, 5, 300)))
        except (BadRequest, BadResponse) as exc:
            reason = f"{'bad_response' if isinstance(exc, BadResponse) else 'bad_request'}: {exc}"
            self._finish(key, "failed", last_error=reason)
            self.status.record_outcome(integration.integration_id, "failed", reason)
            raise PoisonEvent(reason) from exc
        except NotReadyYet as exc:
            self._finish(key, "waiting", last_error=exc.reason)
            raise RetryLater(exc.reason, exc.delay_seconds) from exc

        if isinstance(result, Skip):
            self._finish(key, "skipped", skip_reason=result.reason)
            self.status.record_outcome(integration.integration_id, "skipped")
            self.count("LeadsSkipped")
            return "skipped"

        joined = self._join(message, integration, result.also_claims)
        if joined is None:
            return "duplicate"
        lead = fit_for_queue(imported(result.lead, message))
        ready = ReadyLead(self._handling or message, integration, [key, *joined], lead, result)
        if self._outbox is None:  # outside a batch: sent at once
            try:
                message_id = self.leads.publish(lead.model_dump_json(), lead.lead_id, integration.integration_id)
            except Exception:
                self._release(joined)
                raise
            self._emitted(ready, message_id)
            return "emitted"
        self._outbox.append(ready)
        return "emitted"

    def send_batch_leads(self) -> list[tuple[InboxMessage, str]]:
        """Send the leads the batch built, together (``publish_many``), then record each one sent. Returns the
        events whose lead did not go out or was not recorded, with the reason: a lead not sent has its claims
        released, so its event, tried again, builds it at once (the deduplication id drops a send that did go out
        unseen). After this, leads are sent one at a time until the next batch."""
        self._send_ready()
        failed, self._failed_sends, self._outbox = self._failed_sends, [], None
        return failed

    def _send_ready(self) -> None:
        """Send the outbox now; the events whose lead did not go out (or was not recorded) join ``_failed_sends``."""
        ready, self._outbox = self._outbox or [], []
        if not ready:
            return
        sent = self.leads.publish_many(
            [OutgoingLead(r.lead.model_dump_json(), r.lead.lead_id, r.integration.integration_id) for r in ready]
        )
        recorded = self._record_all_emitted([(r, m) for r, m in zip(ready, sent, strict=True) if m is not None])
        for each, message_id in zip(ready, sent, strict=True):
            try:
                if message_id is None:
                    self._release(each.keys)
                    self._failed_sends.append((each.message, "leads_queue_unavailable"))
                    continue
                self._emitted(each, message_id, recorded=recorded)
            except (BotoCoreError, ClientError) as exc:  # out, but not recorded: the claim's lease decides
                self._failed_sends.append((each.message, f"aws_unavailable: {type(exc).__name__}"))

    def _record_all_emitted(self, sent: list[tuple[ReadyLead, str]]) -> bool:
        """The leads that went out together are recorded together: one write for the batch instead of one a lead
        (which made the ledger's writes twice its claims). False when that write did not happen (refused as a
        whole, or AWS failed): each lead is then recorded on its own, with its own retries, as before."""
        if len(sent) < 2:
            return False
        outcomes: list[tuple[list[str], LedgerState, dict[str, Any]]] = [
            (ready.keys, "emitted", self._emitted_fields(ready, message_id)) for ready, message_id in sent
        ]
        try:
            return self.ledger.finish_each(outcomes)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("the batch's leads not recorded together", extra={"error": type(exc).__name__})
            return False

    def _send_pending(self, key: str) -> None:
        """An event about a conversation whose lead waits in the batch's outbox: send the outbox first, so the
        event finds the conversation emitted (as it would have, one event at a time)."""
        if self._outbox and any(key in r.keys for r in self._outbox):
            self._send_ready()

    def _emitted(self, ready: ReadyLead, message_id: str, recorded: bool = False) -> None:
        """The lead is out: record it (unless ``recorded`` with the batch's others), count it, then its after-emit
        action."""
        result, integration, lead = ready.result, ready.integration, ready.lead
        if not recorded:
            self._record_emitted(ready.keys, **self._emitted_fields(ready, message_id))
        self.status.record_outcome(integration.integration_id, "emitted")
        if lead.channel.origin and any(fact.startswith("unknown_") for fact in result.notes):
            self.status.record_unknown_channel(integration.integration_id, lead.channel.origin)
        for fact in result.notes:
            if fact in STATUS_NOTICES:
                self.status.record_notice(integration.integration_id, fact)
        self.count("LeadsEmitted")
        for fact in result.notes:
            self.count(f"Fact_{fact}")
        if result.after_emit is not None:
            self._after_emit(ready.keys[0], result.after_emit, QUEUED)

    def _emitted_fields(self, ready: ReadyLead, message_id: str) -> dict[str, Any]:
        """What the ledger keeps of an emitted lead. The note state says ``queued`` when an after-emit action
        follows: what the action says when it works, so only another outcome costs a write."""
        result = ready.result
        return {
            "emitted_at": int(self.clock()),
            "leads_message_id": message_id,
            "facts": list(result.notes) or None,
            "crm_lead_id": result.crm_lead_id,
            "crm_lead_created_at": result.crm_lead_created_at,
            "note_state": QUEUED if result.after_emit is not None else None,
        }

    def _record_emitted(self, keys: list[str], **fields: object) -> None:
        """The lead is out: its conversation must say so. A refused write (a throttled partition) is tried again
        here, because the record coming back would find its own claim leased for minutes and spend its receives
        waiting (then the DLQ, for a lead that was sent)."""
        for pause in (*EMITTED_WRITE_PAUSES, None):
            try:
                self.ledger.finish_all(keys, "emitted", **fields)
                return
            except (BotoCoreError, ClientError) as exc:
                if pause is None:
                    raise
                logger.warning("emitted not recorded yet", extra={"error": type(exc).__name__})
                self.sleep(pause)

    def _claim(
        self, message: InboxMessage, integration: Integration, enricher: Enricher, lead_id: str
    ) -> Claimed | AlreadyFinal | HeldElsewhere:
        """Claim the event's conversation. When the batch's reads already show its other keys (a Bitrix24 lead's
        open-lines session) and its ledger item, all are claimed in one write; otherwise (or when that write is
        refused) the event's own key alone, and the others once the lead is built (``_join``)."""
        key = message.lead_key
        ahead = self._claimed_ahead.pop(key, None)
        if ahead is not None:
            claimed, others = ahead
            if others:
                self._held[key] = others
            return claimed
        read = key in self._seen
        seen = self._seen.pop(key, None)  # once: this batch may change the item after
        others = sorted(set(enricher.other_keys(message)) - {key}) if read else []
        for each in (key, *others):
            self._send_pending(each)
        if others:
            claim = ClaimAsRead(
                key,
                lead_id,
                integration.integration_id,
                message.source,
                seen,
                tuple((other, lead_id_for(other)) for other in others),
            )
            together = self.ledger.claim_each([claim])
            if together is not None:
                self._held[key] = others
                return together[0]
        return self.ledger.claim(key, lead_id, integration.integration_id, message.source)

    def _finish(self, key: str, state: LedgerState, **fields: object) -> None:
        """An attempt that ends without a lead: the other keys claimed with the event's own are let go with it (in
        the same write; a skip, final for the event's key, leaves them claimable)."""
        others = self._held.pop(key, [])
        if state in FINAL_STATES and others:
            self.ledger.finish(key, state, **fields)
            self._release(others)
            return
        self.ledger.finish_all([key, *others], state, **fields)

    def _join(self, message: InboxMessage, integration: Integration, others: tuple[str, ...]) -> list[str] | None:
        """Claim the conversation's other keys: the claimed ones, or None when another entity's event already
        emitted it (this event is then a duplicate, recorded as such)."""
        held = self._held.pop(message.lead_key, [])
        self._release([key for key in held if key not in others])
        claimed = [key for key in held if key in others]
        for other in sorted(set(others) - {message.lead_key, *claimed}):  # one order everywhere: no two workers cross
            if other in claimed:  # came with a conversation claimed ahead, below
                continue
            ahead = self._claimed_ahead.pop(other, None)
            if ahead is not None:  # claimed ahead for a later event of this batch: that event will find it emitted
                claimed.append(other)
                self._release([key for key in ahead[1] if key not in others])
                claimed += [key for key in ahead[1] if key in others and key not in claimed]
                continue
            self._send_pending(other)
            result = self.ledger.claim(other, lead_id_for(other), integration.integration_id, message.source)
            if isinstance(result, Claimed):
                claimed.append(other)
                continue
            self._release(claimed)
            if isinstance(result, AlreadyFinal):
                self.ledger.finish(message.lead_key, "skipped", skip_reason=f"same_conversation_as {other}")
                self.count("DuplicateEvents")
                return None
            raise RetryLater("the same conversation is held by another event", 5)
        return claimed

    def _release(self, keys: list[str]) -> None:
        for key in keys:
            self.ledger.finish(key, "failed", last_error="released: the event that claimed it did not finish")

    def _park(self, message: InboxMessage, integration: Integration, reason: str, decided_at: float) -> WorkOutcome:
        self._finish(message.lead_key, "parked", last_error=reason)
        self.status.record_outcome(integration.integration_id, "parked", reason)
        self.count("EventsParked")
        self.parking.park(message, reason, decided_at)
        return "parked"

    def _retry(self, key: str, integration: Integration, reason: str, delay: int) -> None:
        self._finish(key, "failed", last_error=reason)
        self.status.record_outcome(integration.integration_id, "failed", reason)
        raise RetryLater(reason, delay)

    def _after_emit(self, key: str, action: Callable[[], str], recorded: str | None) -> None:
        """Side effects after the lead is out (the amoCRM note): best effort, recorded, never re-emitting.
        ``recorded``: the state the emitted write already holds; only a different one costs a write."""
        try:
            state = action()
        except CrmError as exc:
            state = f"failed: {type(exc).__name__}"
            logger.warning("after-emit action failed", extra={"error": type(exc).__name__})
        if state != recorded:
            self.ledger.set_fields(key, note_state=state)


def imported(lead: NormalizedLead, message: InboxMessage) -> NormalizedLead:
    """A conversation a backfill brought in says so in its lead (``received_at`` is then the import time)."""
    if message.source != "backfill":
        return lead
    payload = message.payload
    start, end = payload.get("backfill_from"), payload.get("backfill_to")
    if not isinstance(start, int) or not isinstance(end, int):
        return lead
    period = Backfill(
        id=str(payload.get("backfill_id") or "")[:64],
        period_from=datetime.fromtimestamp(start, UTC),
        period_to=datetime.fromtimestamp(end, UTC),
    )
    return lead.model_copy(update={"backfill": period})

"""A batch's leads go out together at its end; an event whose lead did not go out is handed back to its own record,
with its conversation's claims released, also when the lead was built from a follow-up (a returning client)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from leadbridge.aws.queues import InboxMessage, OutgoingLead
from leadbridge.aws.store.ledger import AlreadyFinal, Claimed, LedgerEntry, LedgerState
from leadbridge.contract.integration import Integration
from leadbridge.crms.enrichment import Emission, Skip
from leadbridge.flows.worker.lead_worker import LeadWorker
from tests.unit.test_crm_answers_properties import AnswersEnricher, MemoryLedger, Quiet, message


class FollowingLedger(MemoryLedger):
    """The first conversation was emitted long ago; the follow-up's key is new."""

    def claim(self, lead_key: str, lead_id: str, integration_id: str, source: str, now: int | None = None) -> Any:
        if lead_key.endswith(":talk:7"):
            return AlreadyFinal(LedgerEntry(lead_key, "emitted", 1, 0))
        self.states[lead_key] = "in_progress"
        return Claimed(LedgerEntry(lead_key, "in_progress", 1, 0))


class ReturningClient(AnswersEnricher):
    def follow_up(self, message: InboxMessage, finished: LedgerEntry) -> InboxMessage | None:
        return replace(message, conversation="lead:99")

    def build(self, message: InboxMessage, integration: Integration, entry: LedgerEntry) -> Emission | Skip:
        return super().build(message, integration, entry)


class RefusingQueue:
    def __init__(self) -> None:
        self.batches: list[list[OutgoingLead]] = []

    def publish(self, lead_json: str, lead_id: str, integration_id: str) -> str:
        raise AssertionError("a batch sends its leads together")

    def publish_many(self, leads: list[OutgoingLead]) -> list[str | None]:
        self.batches.append(leads)
        return [None] * len(leads)


def test_a_follow_up_lead_not_sent_fails_its_own_record_and_releases_its_claim() -> None:
    ledger, quiet, queue = FollowingLedger(), Quiet(), RefusingQueue()
    worker = LeadWorker(
        integrations=quiet,
        status=quiet,
        ledger=ledger,
        leads=queue,
        enrichers={"amocrm": ReturningClient({"id": 3, "name": "x"}, {"id": 4, "name": "Ann"})},
        count=quiet,
        parking=quiet,
    )
    event = message("amocrm", "talk", "7", {"entity_id": "3", "contact_id": "4"})
    worker.prepare([])
    assert worker.handle(event) == "emitted"
    assert queue.batches == []  # not yet: at the batch's end
    failed = worker.send_batch_leads()
    assert len(queue.batches) == 1
    assert [(sent, reason) for sent, reason in failed] == [(event, "leads_queue_unavailable")]
    assert failed[0][0] is event  # the record's own event, not the follow-up built from it
    follow_up_key = "amocrm:1:talk:7:lead:99"
    released: LedgerState = "failed"
    assert ledger.states[follow_up_key] == released

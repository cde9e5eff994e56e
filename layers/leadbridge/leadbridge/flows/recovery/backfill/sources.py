"""What a backfill lists in each CRM, and how one listed conversation becomes an inbox message.

- amoCRM cannot list talks, but its events log can (reference/amocrm-chats-events-dp.md A.1): the period's
  ``incoming_chat_message`` events, 100 a page, name the talks; each talk is read (``GET /api/v4/talks/{id}``) and
  kept when it *started* in the period (a talk that began before it only continued in it).
- Bitrix24 lists leads and deals by ``DATE_CREATE`` (50 a page, paged by id); the worker reads each one as it reads
  a webhook's, and leaves out what did not come from Open Lines.
A listed conversation is a pending key: ``talk#<id>``, ``lead#<id>``, ``deal#<id>``.
"""

from __future__ import annotations

from typing import Any, Protocol

from leadbridge.aws.queues import InboxMessage
from leadbridge.contract.backfill_job import BackfillJob
from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.amocrm.recovered import amo_talk_message, amo_talks_page
from leadbridge.crms.bitrix24.client import BitrixClient
from leadbridge.crms.bitrix24.recovered import BITRIX_PAGE, bitrix_created_page, bitrix_entity_message
from leadbridge.crms.crm_values import as_id

BITRIX_ENTITIES = ("lead", "deal")


class Listing(Protocol):
    """One CRM's side of a backfill."""

    # CRM requests the worker will make for one imported conversation, on top of ``message``'s own: what the
    # backfill's pace charges for it, so that the share of the CRM's limit holds for the whole import.
    worker_requests_per_conversation: int
    message_requests: int  # requests ``message`` makes

    def page(self, job: BackfillJob) -> tuple[list[str], dict[str, Any] | None]:
        """One page of the listing: the pending keys it names, and the next cursor (None: the listing is done)."""
        ...

    def lead_key(self, key: str) -> str:
        """The ledger key of a pending key's conversation."""
        ...

    def message(self, job: BackfillJob, key: str, now: float) -> InboxMessage | None:
        """The inbox message for a pending key; None when it is not a conversation of the period."""
        ...


def backfill_fields(job: BackfillJob) -> dict[str, Any]:
    """What the worker needs to mark the lead as imported."""
    return {"backfill_id": job.backfill_id, "backfill_from": job.period_from, "backfill_to": job.period_to}


class AmoListing:
    worker_requests_per_conversation = 2  # the talk's lead and contact
    message_requests = 1  # the talk

    def __init__(self, integration: Integration, client: AmoClient) -> None:
        self.integration = integration
        self.client = client
        self.account_id = integration.account_id or ""

    def page(self, job: BackfillJob) -> tuple[list[str], dict[str, Any] | None]:
        number = int(job.cursor.get("page", 1))
        talks, more = amo_talks_page(self.client, job.period_from, job.period_to - 1, number)
        return [f"talk#{t}" for t in talks], ({"page": number + 1} if more else None)

    def lead_key(self, key: str) -> str:
        return f"amocrm:{self.account_id}:talk:{key.split('#', 1)[1]}"

    def message(self, job: BackfillJob, key: str, now: float) -> InboxMessage | None:
        talk_id = key.split("#", 1)[1]
        talk = self.client.get_talk(talk_id)
        started = as_id(talk.get("created_at"))
        if started is None or not job.period_from <= int(started) < job.period_to:
            return None  # it began before the period (or after it): not this period's conversation
        return amo_talk_message(
            self.integration, self.account_id, talk_id, talk, now, source="backfill", extra=backfill_fields(job)
        )


class BitrixListing:
    worker_requests_per_conversation = 1  # one batch: the entity, its activity, the transcript, the contact
    message_requests = 0

    def __init__(self, integration: Integration, client: BitrixClient) -> None:
        self.integration = integration
        self.client = client
        self.member_id = integration.account_id or ""

    def page(self, job: BackfillJob) -> tuple[list[str], dict[str, Any] | None]:
        entity = str(job.cursor.get("entity", BITRIX_ENTITIES[0]))
        after_id = int(job.cursor.get("after_id", 0))
        rows = bitrix_created_page(self.client, entity, job.period_from, job.period_to, after_id)
        keys = [f"{entity}#{as_id(row['ID'])}" for row in rows]
        if len(rows) == BITRIX_PAGE:
            return keys, {"entity": entity, "after_id": max(int(str(as_id(row["ID"]))) for row in rows)}
        following = BITRIX_ENTITIES.index(entity) + 1
        if following < len(BITRIX_ENTITIES):
            return keys, {"entity": BITRIX_ENTITIES[following], "after_id": 0}
        return keys, None

    def lead_key(self, key: str) -> str:
        entity, entity_id = key.split("#", 1)
        return f"bitrix24:{self.member_id}:{entity}:{entity_id}"

    def message(self, job: BackfillJob, key: str, now: float) -> InboxMessage | None:
        entity, entity_id = key.split("#", 1)
        row = {"ID": entity_id, "DATE_CREATE": f"backfill-{job.backfill_id}"}
        return bitrix_entity_message(
            self.integration, self.member_id, entity, row, now, source="backfill", extra=backfill_fields(job)
        )

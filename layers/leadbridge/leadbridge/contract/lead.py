"""The normalized lead, v1: the contract with the analytics loader.

Top-level field names are fixed by agreement with the loader. The JSON Schema in ``schema/lead-v1.schema.json`` is
generated from this model (``make schema``) and a test fails when the two drift apart. A value the CRM does not
give is null, never guessed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

SCHEMA_VERSION: Literal[1] = 1
LEAD_ID_NAMESPACE = uuid.UUID("5a0b7c52-4a5e-4d1e-9d6e-6c6561646272")

Crm = Literal["amocrm", "bitrix24"]
EntityType = Literal["talk", "lead", "deal", "site_chat"]


def _utc_iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


UtcDatetime = Annotated[AwareDatetime, PlainSerializer(_utc_iso, return_type=str, when_used="json")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceEntity(_Model):
    type: EntityType = Field(
        description="The CRM entity the lead was built from: an amoCRM talk (or lead, for a stage trigger without "
        "a chat), a Bitrix24 lead or deal; site_chat: a conversation of the cabinet's own chat channel (its id)."
    )
    id: str = Field(description="The entity's id in the CRM.")


class Channel(_Model):
    kind: Literal["online_chat", "messenger", "crm_stage"] = Field(
        description="The site's online chat, or a messenger; crm_stage: no chat, an amoCRM lead that entered a "
        "pipeline stage (a digital-pipeline trigger, when the integration asks for every such lead)."
    )
    messenger: str | None = Field(
        description="Normalized messenger name (telegram, whatsapp, vk, ...); null for the online chat."
    )
    origin: str | None = Field(description="The CRM's raw value: amoCRM talk origin, Bitrix24 connector id.")


class Contact(_Model):
    name: str | None
    phones: list[str] = Field(description="E.164 numbers.")
    emails: list[str]


class Utm(_Model):
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    content: str | None = None
    term: str | None = None


class Attribution(_Model):
    kind: Literal["session", "messenger_default", "integration_default"]
    session_id: str | None = Field(description="The analytics session id, when the chat carried one.")
    campaign_id: int | None = Field(description="Cabinet campaign id (traffic type 'campaign').")
    source_id: int | None = Field(description="Cabinet source id (traffic type 'source').")
    site_id: int | None = Field(description="Cabinet site id, with a source.")
    utm: Utm


class ChatMessage(_Model):
    at: UtcDatetime | None
    author: Literal["client", "operator", "system"]
    text: str


class Chat(_Model):
    messages: list[ChatMessage]


class Backfill(_Model):
    id: str = Field(description="The backfill that imported the conversation.")
    period_from: UtcDatetime = Field(description="The start of the period it imported.")
    period_to: UtcDatetime = Field(description="The end of the period it imported (exclusive).")


class NormalizedLead(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    lead_id: str = Field(description="Stable: the same conversation always gives the same id. Use it to deduplicate.")
    integration_id: str
    crm: Crm
    crm_account: str = Field(description="amoCRM subdomain or Bitrix24 portal domain.")
    source_entity: SourceEntity
    channel: Channel
    created_at: UtcDatetime = Field(description="When the conversation started, ISO 8601 UTC.")
    contact: Contact
    attribution: Attribution
    employee_id: int | None = Field(description="Cabinet employee to assign the lead to.")
    chat: Chat | None = Field(description="The transcript, where the CRM gives it.")
    received_at: UtcDatetime = Field(
        description="When leadbridge accepted the webhook (for an imported conversation: when it was imported), "
        "ISO 8601 UTC."
    )
    backfill: Backfill | None = Field(
        default=None,
        description="Set when a backfill imported the conversation after the fact (no webhook brought it in); "
        "then created_at is still the conversation's own start.",
    )


def lead_key(crm: Crm, account: str, entity: EntityType, entity_id: str) -> str:
    """The ledger key of one conversation: ``crm:account:entity:id``."""
    return f"{crm}:{account}:{entity}:{entity_id}"


def lead_id_for(key: str) -> str:
    """A stable id derived from the lead key, so retries and duplicates always produce the same id."""
    return str(uuid.uuid5(LEAD_ID_NAMESPACE, key))


MAX_LEAD_BYTES = 200 * 1024  # well inside SQS's message size, and the 256 KiB that older consumers still assume
MAX_NAME = 200
MAX_CONTACT_VALUES = 20


def fit_for_queue(lead: NormalizedLead) -> NormalizedLead:
    """The lead within its size caps, so that it always fits the leads queue.

    The name and the contact lists are cut; a transcript too large keeps its first messages (the chat's first words
    matter most to the cabinet) and ends with a system line saying how many were left out.
    """
    contact = lead.contact.model_copy(
        update={
            "name": lead.contact.name[:MAX_NAME] if lead.contact.name else None,
            "phones": lead.contact.phones[:MAX_CONTACT_VALUES],
            "emails": lead.contact.emails[:MAX_CONTACT_VALUES],
        }
    )
    fitted = lead.model_copy(update={"contact": contact})
    if lead.chat is None or _size(fitted) <= MAX_LEAD_BYTES:
        return fitted
    messages = lead.chat.messages
    budget = MAX_LEAD_BYTES - _size(fitted.model_copy(update={"chat": Chat(messages=[])})) - 200
    kept: list[ChatMessage] = []
    for message in messages:
        cost = len(message.model_dump_json().encode()) + 1
        if cost > budget:
            break
        kept.append(message)
        budget -= cost
    left_out = len(messages) - len(kept)
    kept.append(ChatMessage(at=None, author="system", text=f"[{left_out} more messages not included: size limit]"))
    return fitted.model_copy(update={"chat": Chat(messages=kept)})


def _size(lead: NormalizedLead) -> int:
    return len(lead.model_dump_json().encode())

"""One amoCRM talk -> one normalized lead.

Two REST calls in the usual case: the talk's lead (``with=contacts``) and its contact. The talk itself is read
only when the event does not name its lead (a sweep, or a talk without an entity). The webhook authenticated the
sender; every value that ends in the lead comes from the REST API, except the talk's own fields (origin, times).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from leadbridge.aws.queues import InboxMessage
from leadbridge.contract.attribution import attribute, describe
from leadbridge.contract.integration import Integration
from leadbridge.contract.lead import Channel, Chat, Contact, NormalizedLead, SourceEntity, Utm, lead_id_for
from leadbridge.contract.phones import clean_emails, phones_e164
from leadbridge.crms.amocrm.channels import channel_for_origin
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.crm_values import as_dict, as_id, as_text, dicts, epoch_time

UTM_CODES = {
    "source": "UTM_SOURCE",
    "medium": "UTM_MEDIUM",
    "campaign": "UTM_CAMPAIGN",
    "content": "UTM_CONTENT",
    "term": "UTM_TERM",
}
NOTE_SERVICE = "leadbridge"


SessionSource = Literal["salesbot", "custom_field"]
SESSION_SOURCES: dict[str, str] = {"salesbot": "из Salesbot", "custom_field": "из поля сделки"}


@dataclass(frozen=True, slots=True)
class AmoLead:
    lead: NormalizedLead
    crm_lead_id: str | None
    origin_known: bool
    lead_is_new: bool  # created after ``returning_after`` (the first conversation's lead), when that is set
    crm_lead_created_at: int | None
    session_source: SessionSource | None = None
    trigger: str | None = None  # the digital-pipeline trigger that announced it (lead_appeared_in_status, ...)

    def note_text(self) -> str:
        """The service note in the lead's card: the lead id, the attribution (and where its session came from),
        and the trigger when a digital-pipeline trigger announced it."""
        attribution = describe(self.lead.attribution)
        if self.session_source is not None:
            attribution += f" ({SESSION_SOURCES[self.session_source]})"
        via = f", по триггеру цифровой воронки «{self.trigger}»" if self.trigger else ""
        return f"Заявка передана в аналитику (lead_id {self.lead.lead_id}{via}), атрибуция {attribution}."


class BotSessions(Protocol):
    def __call__(self, lead_id: str) -> str | None:
        """The session Salesbot handed over for this amoCRM lead, if any."""
        ...


def no_bot_session(lead_id: str) -> str | None:
    return None


def build_talk_lead(
    message: InboxMessage,
    integration: Integration,
    client: AmoClient,
    bot_session: BotSessions = no_bot_session,
    trigger: str | None = None,
) -> AmoLead:
    talk = dict(message.payload)
    if not as_id(talk.get("entity_id")) and talk.get("entity_type") != "customer":
        talk.update(talk_from_api(client.get_talk(message.entity_id)))
    lead: dict[str, Any] | None = None
    lead_id = as_id(talk.get("entity_id"))
    if lead_id and talk.get("entity_type") in {"lead", None}:
        lead = client.get_lead(lead_id)
    contact_id = as_id(talk.get("contact_id")) or _main_contact_id(lead)
    contact = client.get_contact(contact_id) if contact_id else None

    session_id, session_source = _session(integration, lead_id, lead, contact, bot_session)
    channel, origin_known = channel_for_origin(_as_str(talk.get("origin")))
    utm = Utm(**{name: _field_by_code(lead, code) for name, code in UTM_CODES.items()})
    key = message.lead_key
    normalized = NormalizedLead(
        lead_id=lead_id_for(key),
        integration_id=integration.integration_id,
        crm="amocrm",
        crm_account=integration.account_name,
        source_entity=SourceEntity(type="talk", id=message.entity_id),
        channel=channel,
        created_at=_created_at(talk, lead, message),
        contact=_contact(contact, integration.default_phone_region),
        attribution=attribute(integration, channel, session_id, utm),
        employee_id=integration.employee_id,
        chat=_no_transcript(),
        received_at=datetime.fromisoformat(message.received_at),
    )
    after = message.payload.get("returning_after")
    lead_created = epoch_time(as_dict(lead).get("created_at"))
    lead_is_new = not isinstance(after, int) or (lead_created is not None and lead_created.timestamp() > after)
    return AmoLead(
        lead=normalized,
        crm_lead_id=as_id(as_dict(lead).get("id")),
        origin_known=origin_known,
        lead_is_new=lead_is_new,
        crm_lead_created_at=int(lead_created.timestamp()) if lead_created else None,
        session_source=session_source,
        trigger=trigger,
    )


def build_stage_lead(
    message: InboxMessage, integration: Integration, client: AmoClient, bot_session: BotSessions, trigger: str
) -> AmoLead:
    """A lead without a chat that entered a pipeline stage, when the integration asks for every such lead."""
    lead = client.get_lead(message.entity_id)
    contact_id = _main_contact_id(lead)
    contact = client.get_contact(contact_id) if contact_id else None
    session_id, session_source = _session(integration, message.entity_id, lead, contact, bot_session)
    channel = Channel(kind="crm_stage", messenger=None, origin=f"dp:{trigger}"[:200])
    utm = Utm(**{name: _field_by_code(lead, code) for name, code in UTM_CODES.items()})
    created = epoch_time(lead.get("created_at"))
    normalized = NormalizedLead(
        lead_id=lead_id_for(message.lead_key),
        integration_id=integration.integration_id,
        crm="amocrm",
        crm_account=integration.account_name,
        source_entity=SourceEntity(type="lead", id=message.entity_id),
        channel=channel,
        created_at=created or datetime.fromisoformat(message.received_at),
        contact=_contact(contact, integration.default_phone_region),
        attribution=attribute(integration, channel, session_id, utm),
        employee_id=integration.employee_id,
        chat=None,
        received_at=datetime.fromisoformat(message.received_at),
    )
    return AmoLead(
        lead=normalized,
        crm_lead_id=message.entity_id,
        origin_known=True,
        lead_is_new=True,
        crm_lead_created_at=int(created.timestamp()) if created else None,
        session_source=session_source,
        trigger=trigger,
    )


def _no_transcript() -> Chat | None:
    # amoCRM's REST v4 has no transcript for chats started in other channels; the Chats API is for channel owners.
    return None


def talk_from_api(talk: dict[str, Any]) -> dict[str, Any]:
    """A talk as ``GET /api/v4/talks/{id}`` answers it, in the webhook's terms."""
    embedded_leads = dicts(as_dict(talk.get("_embedded")).get("leads"))
    entity_id = as_id(talk.get("entity_id")) or (as_id(embedded_leads[0].get("id")) if embedded_leads else None)
    return {
        "entity_id": entity_id,
        "entity_type": talk.get("entity_type") if talk.get("entity_type") in {"lead", "customer"} else None,
        "contact_id": as_id(talk.get("contact_id")),
        "origin": as_text(talk.get("origin"), 200),
        "created_at": as_id(talk.get("created_at")),
    }


def _as_str(value: object) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


def _main_contact_id(lead: dict[str, Any] | None) -> str | None:
    contacts = dicts(as_dict(as_dict(lead).get("_embedded")).get("contacts"))
    main = [c for c in contacts if c.get("is_main") is True] or contacts
    return as_id(main[0].get("id")) if main else None


def _custom_fields(entity: dict[str, Any] | None) -> list[dict[str, Any]]:
    return dicts(as_dict(entity).get("custom_fields_values"))


def _values(field: dict[str, Any]) -> list[str]:
    out = []
    for item in dicts(field.get("values")):
        value = as_text(item.get("value"), 1000)
        if value is not None:
            out.append(value)
    return out


def _field_by_code(entity: dict[str, Any] | None, code: str) -> str | None:
    for field in _custom_fields(entity):
        if str(field.get("field_code") or "").upper() == code:
            values = _values(field)
            return values[0][:500] if values else None
    return None


def _session(
    integration: Integration,
    lead_id: str | None,
    lead: dict[str, Any] | None,
    contact: dict[str, Any] | None,
    bot_session: BotSessions,
) -> tuple[str | None, SessionSource | None]:
    """Salesbot's session for the lead first (signed by amoCRM, no field needed), then the custom field."""
    from_bot = bot_session(lead_id) if lead_id else None
    if from_bot:
        return from_bot, "salesbot"
    from_field = _session_id(integration, lead, contact)
    return (from_field, "custom_field") if from_field else (None, None)


def _session_id(integration: Integration, lead: dict[str, Any] | None, contact: dict[str, Any] | None) -> str | None:
    setting = integration.session_field
    if setting is None:
        return None
    entity = lead if setting.entity == "lead" else contact
    for field in _custom_fields(entity):
        if as_id(field.get("field_id")) == str(setting.field_id):
            values = _values(field)
            return values[0][:200] if values else None
    return None


def _contact(contact: dict[str, Any] | None, region: str) -> Contact:
    if contact is None:
        return Contact(name=None, phones=[], emails=[])
    phones: list[str] = []
    emails: list[str] = []
    for field in _custom_fields(contact):
        code = str(field.get("field_code") or "").upper()
        if code == "PHONE":
            phones.extend(_values(field))
        elif code == "EMAIL":
            emails.extend(_values(field))
    name = as_text(contact.get("name"))
    if name is None or isinstance(contact.get("name"), int):
        parts = [as_text(contact.get("first_name")), as_text(contact.get("last_name"))]
        name = " ".join(p for p in parts if p and not p.isdigit()) or None
    return Contact(name=name, phones=phones_e164(phones, region), emails=clean_emails(emails))


def _created_at(talk: dict[str, Any], lead: dict[str, Any] | None, message: InboxMessage) -> datetime:
    """The talk's start; for a later conversation on the same talk (a returning client), its new lead's."""
    candidates = (talk.get("created_at"), as_dict(lead).get("created_at"))
    for candidate in reversed(candidates) if message.conversation else candidates:
        moment = epoch_time(candidate)
        if moment is not None:
            return moment
    return datetime.fromisoformat(message.received_at)

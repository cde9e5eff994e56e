"""One amoCRM talk -> one normalized lead.

Two REST calls in the usual case: the talk's lead (``with=contacts``) and its contact. The talk itself is read
only when the event does not name its lead (a sweep, or a talk without an entity). The webhook authenticated the
sender; every value that ends in the lead comes from the REST API, except the talk's own fields (origin, times).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from leadbridge.amocrm.client import AmoClient
from leadbridge.amocrm.origins import channel_for_origin
from leadbridge.attribution import attribute, describe
from leadbridge.integration import Integration
from leadbridge.lead import Chat, Contact, NormalizedLead, SourceEntity, Utm, lead_id_for
from leadbridge.phones import clean_emails, phones_e164
from leadbridge.queues import InboxMessage

UTM_CODES = {
    "source": "UTM_SOURCE",
    "medium": "UTM_MEDIUM",
    "campaign": "UTM_CAMPAIGN",
    "content": "UTM_CONTENT",
    "term": "UTM_TERM",
}
NOTE_SERVICE = "leadbridge"


@dataclass(frozen=True, slots=True)
class AmoLead:
    lead: NormalizedLead
    crm_lead_id: str | None
    origin_known: bool

    def note_text(self) -> str:
        return (
            f"Заявка передана в аналитику (lead_id {self.lead.lead_id}), атрибуция {describe(self.lead.attribution)}."
        )


def build_talk_lead(message: InboxMessage, integration: Integration, client: AmoClient) -> AmoLead:
    talk = dict(message.payload)
    if not talk.get("entity_id") and talk.get("entity_type") != "customer":
        talk.update(_talk_from_api(client.get_talk(message.entity_id)))
    lead: dict[str, Any] | None = None
    if talk.get("entity_id") and talk.get("entity_type") in {"lead", None}:
        lead = client.get_lead(str(talk["entity_id"]))
    contact_id = _as_id(talk.get("contact_id")) or _main_contact_id(lead)
    contact = client.get_contact(contact_id) if contact_id else None

    session_id = _session_id(integration, lead, contact)
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
    return AmoLead(
        lead=normalized, crm_lead_id=str(lead["id"]) if lead and "id" in lead else None, origin_known=origin_known
    )


def _no_transcript() -> Chat | None:
    # amoCRM's REST v4 has no transcript for chats started in other channels; the Chats API is for channel owners.
    return None


def _talk_from_api(talk: dict[str, Any]) -> dict[str, Any]:
    embedded_leads = ((talk.get("_embedded") or {}).get("leads")) or []
    entity_id = talk.get("entity_id") or (embedded_leads[0].get("id") if embedded_leads else None)
    return {
        "entity_id": _as_id(entity_id),
        "entity_type": talk.get("entity_type") if talk.get("entity_type") in {"lead", "customer"} else None,
        "contact_id": _as_id(talk.get("contact_id")),
        "origin": talk.get("origin"),
        "created_at": _as_id(talk.get("created_at")),
    }


def _as_id(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return str(value)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return value
    return None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _main_contact_id(lead: dict[str, Any] | None) -> str | None:
    contacts = ((lead or {}).get("_embedded") or {}).get("contacts") or []
    main = [c for c in contacts if isinstance(c, dict) and c.get("is_main")] or [
        c for c in contacts if isinstance(c, dict)
    ]
    return _as_id(main[0].get("id")) if main else None


def _custom_fields(entity: dict[str, Any] | None) -> list[dict[str, Any]]:
    values = (entity or {}).get("custom_fields_values") or []
    return [f for f in values if isinstance(f, dict)]


def _values(field: dict[str, Any]) -> list[str]:
    out = []
    for item in field.get("values") or []:
        value = item.get("value") if isinstance(item, dict) else None
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value).strip():
            out.append(str(value).strip())
    return out


def _field_by_code(entity: dict[str, Any] | None, code: str) -> str | None:
    for field in _custom_fields(entity):
        if str(field.get("field_code") or "").upper() == code:
            values = _values(field)
            return values[0] if values else None
    return None


def _session_id(integration: Integration, lead: dict[str, Any] | None, contact: dict[str, Any] | None) -> str | None:
    setting = integration.session_field
    if setting is None:
        return None
    entity = lead if setting.entity == "lead" else contact
    for field in _custom_fields(entity):
        if field.get("field_id") == setting.field_id:
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
    name = contact.get("name")
    if not isinstance(name, str) or not name.strip():
        parts = [contact.get("first_name"), contact.get("last_name")]
        name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip()) or None
    return Contact(name=name.strip() if name else None, phones=phones_e164(phones, region), emails=clean_emails(emails))


def _created_at(talk: dict[str, Any], lead: dict[str, Any] | None, message: InboxMessage) -> datetime:
    for candidate in (talk.get("created_at"), (lead or {}).get("created_at")):
        stamp = _as_id(candidate)
        if stamp is not None:
            return datetime.fromtimestamp(int(stamp), tz=UTC)
    return datetime.fromisoformat(message.received_at)

"""One Bitrix24 lead or deal from Open Lines -> one normalized lead, from a few commands of a shared ``batch``.

Per event four commands, chained with ``$result[...]`` so one request reads everything:
the lead (or deal), its contact, its open-lines activity (the session), and the session's transcript.
Leads that did not come from Open Lines (forms, calls, manual entry) are skipped. When the lead says it came from
Open Lines but Bitrix24 has not written the activity yet (it does so after the lead), the event waits; after a
bounded wait it is emitted with what there is, and the ledger says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadbridge.attribution import attribute
from leadbridge.bitrix24.client import BatchResult
from leadbridge.bitrix24.connectors import channel_for_connector, connector_from_imol, connector_from_source_id
from leadbridge.bitrix24.transcript import session_marker, transcript
from leadbridge.crm_values import as_dict, as_id, as_text, dicts, iso_time
from leadbridge.http.errors import BadRequest, NotFound
from leadbridge.integration import Integration
from leadbridge.lead import Contact, NormalizedLead, SourceEntity, Utm, lead_id_for
from leadbridge.phones import clean_emails, phones_e164
from leadbridge.queues import InboxMessage

COMMANDS_PER_EVENT = 4
OWNER_TYPE = {"lead": 1, "deal": 2}
ACTIVITY_SELECT = "&".join(
    f"select[]={name}"
    for name in ("ID", "ASSOCIATED_ENTITY_ID", "PROVIDER_PARAMS", "RESULT_SOURCE_ID", "CREATED", "DIRECTION")
)


@dataclass(frozen=True, slots=True)
class NotFromOpenLines:
    reason: str


@dataclass(frozen=True, slots=True)
class ActivityMissing:
    """Open Lines lead without its activity yet."""


@dataclass(frozen=True, slots=True)
class BitrixLead:
    lead: NormalizedLead
    connector_known: bool
    activity_missing: bool
    also_claims: tuple[str, ...]  # the conversation's other ledger keys (see ``conversation_keys``)


def conversation_keys(message: InboxMessage, entity: dict[str, Any], activity: dict[str, Any] | None) -> list[str]:
    """Every ledger key the chat is known by, the canonical one first.

    Bitrix24's converter creates a deal with ``LEAD_ID`` and binds the lead's activities (the open-lines session
    included) to it, so one chat can fire ONCRMLEADADD for the lead and ONCRMDEALADD for the deal, in either order.
    The chat is the lead it started as (for a converted deal, ``LEAD_ID``) and its open-lines session; a deal that
    an open line created directly is its own.
    """
    prefix = f"bitrix24:{message.account}"
    converted_from = as_id(entity.get("LEAD_ID")) if message.entity_type == "deal" else None
    keys = [f"{prefix}:lead:{converted_from}"] if converted_from else []
    keys.append(message.lead_key)
    session = as_id((activity or {}).get("ASSOCIATED_ENTITY_ID"))
    if session:
        keys.append(f"{prefix}:session:{session}")
    return keys


def commands(message: InboxMessage, prefix: str) -> dict[str, str]:
    entity, entity_id = message.entity_type, message.entity_id
    owner = OWNER_TYPE[entity]
    return {
        f"{prefix}e": f"crm.{entity}.get?id={entity_id}",
        f"{prefix}c": f"crm.contact.get?id=$result[{prefix}e][CONTACT_ID]",
        f"{prefix}a": (
            f"crm.activity.list?filter[OWNER_TYPE_ID]={owner}&filter[OWNER_ID]={entity_id}"
            f"&filter[PROVIDER_ID]=IMOPENLINES_SESSION&order[ID]=ASC&{ACTIVITY_SELECT}"
        ),
        f"{prefix}h": f"imopenlines.session.history.get?SESSION_ID=$result[{prefix}a][0][ASSOCIATED_ENTITY_ID]",
    }


def build_bitrix_lead(
    message: InboxMessage, integration: Integration, batch: BatchResult, prefix: str, give_up_waiting: bool
) -> BitrixLead | NotFromOpenLines | ActivityMissing:
    entity = _result(batch, f"{prefix}e")
    if not isinstance(entity, dict):
        error = as_dict(batch.errors.get(f"{prefix}e"))
        description = str(error.get("error_description", ""))[:100]
        if description.lower().startswith("not found") or not error:
            raise NotFound(f"Bitrix24 {message.entity_type} {message.entity_id} not found")
        code = str(error.get("error") or description)[:60]
        raise BadRequest(f"Bitrix24 {message.entity_type} read failed ({code})")
    contact = _result(batch, f"{prefix}c")
    contact = contact if isinstance(contact, dict) else None
    activities = _result(batch, f"{prefix}a")
    activity = (
        activities[0] if isinstance(activities, list) and activities and isinstance(activities[0], dict) else None
    )
    history = _result(batch, f"{prefix}h")
    history = history if isinstance(history, dict) else None

    connector = _connector(activity, entity, contact)
    keys = conversation_keys(message, entity, activity)
    converted = keys[0] != message.lead_key  # a deal converted from a lead: its identity is known without waiting
    if activity is None:
        if connector is None and not converted:
            return NotFromOpenLines(reason=f"source {_text(entity.get('SOURCE_ID'))} is not Open Lines")
        if not give_up_waiting and not converted:
            return ActivityMissing()
    channel, known = channel_for_connector(connector)
    utm = Utm(
        **{
            part: _text(entity.get(f"UTM_{part.upper()}"))
            for part in ("source", "medium", "campaign", "content", "term")
        }
    )
    lead = NormalizedLead(
        lead_id=lead_id_for(keys[0]),  # the same id whichever entity's event emits the conversation
        integration_id=integration.integration_id,
        crm="bitrix24",
        crm_account=integration.account_name,
        source_entity=SourceEntity(type=message.entity_type, id=message.entity_id),  # type: ignore[arg-type]
        channel=channel,
        created_at=_created_at(entity, message),
        contact=_contact(entity, contact, integration.default_phone_region),
        attribution=attribute(integration, channel, session_marker(history), utm),
        employee_id=integration.employee_id,
        chat=transcript(history),
        received_at=datetime.fromisoformat(message.received_at),
    )
    return BitrixLead(
        lead=lead,
        connector_known=known,
        activity_missing=activity is None,
        also_claims=tuple(k for k in keys if k != message.lead_key),
    )


def _result(batch: BatchResult, key: str) -> Any:
    return batch.results.get(key)


def _connector(activity: dict[str, Any] | None, entity: dict[str, Any], contact: dict[str, Any] | None) -> str | None:
    if activity is not None:
        direct = _text(activity.get("RESULT_SOURCE_ID"))
        if direct:
            return direct
        user_code = _text(as_dict(activity.get("PROVIDER_PARAMS")).get("USER_CODE"))
        if user_code:
            return user_code.split("|", 1)[0]
    for holder in (entity, contact or {}):
        for im in dicts(holder.get("IM")):
            found = connector_from_imol(_text(im.get("VALUE")))
            if found:
                return found
    return connector_from_source_id(_text(entity.get("SOURCE_ID")))


def _text(value: object) -> str | None:
    return as_text(value, 500)


def _multi(holder: dict[str, Any] | None, kind: str) -> list[str]:
    return [v["VALUE"] for v in dicts(as_dict(holder).get(kind)) if isinstance(v.get("VALUE"), str)][:50]


def _name(holder: dict[str, Any] | None) -> str | None:
    if not holder:
        return None
    parts = [_text(holder.get(k)) for k in ("NAME", "SECOND_NAME", "LAST_NAME")]
    return " ".join(p for p in parts if p) or None


def _contact(entity: dict[str, Any], contact: dict[str, Any] | None, region: str) -> Contact:
    phones = _multi(contact, "PHONE") + _multi(entity, "PHONE")
    emails = _multi(contact, "EMAIL") + _multi(entity, "EMAIL")
    return Contact(
        name=_name(contact) or _name(entity), phones=phones_e164(phones, region), emails=clean_emails(emails)
    )


def _created_at(entity: dict[str, Any], message: InboxMessage) -> datetime:
    return iso_time(entity.get("DATE_CREATE")) or datetime.fromisoformat(message.received_at)

"""One Bitrix24 lead or deal from Open Lines -> one normalized lead, from a few commands of a shared ``batch``.

Per event four commands, chained with ``$result[...]`` so one request reads everything:
the lead (or deal), its contact, its open-lines activity (the session, found through ``BINDINGS`` as the
crm.activity.list docs say: Open Lines binds its activity, and a deal may be bound without owning it), and the
session's transcript.

A chained read is never trusted. Bitrix24 resolves ``$result[x0_e][CONTACT_ID]`` to the deepest value that is set:
with ``CONTACT_ID: null`` (every new Open Lines client in lead mode) it passes the whole lead as ``id``, which the
CRM casts to 1, and contact #1 comes back. So a contact is kept only when its ``ID`` is the entity's
``CONTACT_ID``, and a transcript only when its ``sessionId`` is the activity's session.

Each command may be refused on its own inside the 200 answer (``result_error``): ``refusals.py`` says what each
refusal means, and none of them is taken for "there is nothing to read".
Leads that did not come from Open Lines (forms, calls, manual entry) are skipped. When the lead says it came from
Open Lines but Bitrix24 has not written the activity yet (it does so after the lead), the event waits; after a
bounded wait it is emitted with what there is, and the ledger says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadbridge.aws.queues import InboxMessage
from leadbridge.contract.attribution import attribute
from leadbridge.contract.integration import Integration
from leadbridge.contract.lead import Contact, NormalizedLead, SourceEntity, Utm, lead_id_for
from leadbridge.contract.phones import clean_emails, phones_e164
from leadbridge.crms.bitrix24.channels import channel_for_connector, connector_from_imol, connector_from_source_id
from leadbridge.crms.bitrix24.client import BatchResult
from leadbridge.crms.bitrix24.transcript import session_marker, transcript
from leadbridge.crms.crm_values import as_dict, as_id, as_text, dicts, iso_time
from leadbridge.http.errors import CrmError, InsufficientRights, NotFound

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
class HistoryRefused:
    """The transcript (and with it the site session) was refused to the token's user; it may be granted later."""

    code: str


@dataclass(frozen=True, slots=True)
class BitrixLead:
    lead: NormalizedLead
    connector_known: bool
    activity_missing: bool
    also_claims: tuple[str, ...]  # the conversation's other ledger keys (see ``conversation_keys``)
    history_refused: str | None = None  # emitted without its transcript because it was refused (the code)


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


def known_other_keys(message: InboxMessage, batch: BatchResult, prefix: str) -> tuple[str, ...]:
    """The conversation's other ledger keys as a ``batch`` read of its event shows them (() without its entity)."""
    entity = _result(batch, f"{prefix}e")
    if not isinstance(entity, dict):
        return ()
    keys = conversation_keys(message, entity, _activity(batch, prefix))
    return tuple(k for k in keys if k != message.lead_key)


def commands(message: InboxMessage, prefix: str) -> dict[str, str]:
    entity, entity_id = message.entity_type, message.entity_id
    owner = OWNER_TYPE[entity]
    return {
        f"{prefix}e": f"crm.{entity}.get?id={entity_id}",
        f"{prefix}c": f"crm.contact.get?id=$result[{prefix}e][CONTACT_ID]",
        f"{prefix}a": (
            f"crm.activity.list?filter[BINDINGS][0][OWNER_TYPE_ID]={owner}&filter[BINDINGS][0][OWNER_ID]={entity_id}"
            f"&filter[PROVIDER_ID]=IMOPENLINES_SESSION&order[ID]=ASC&{ACTIVITY_SELECT}"
        ),
        f"{prefix}h": f"imopenlines.session.history.get?SESSION_ID=$result[{prefix}a][0][ASSOCIATED_ENTITY_ID]",
    }


def build_bitrix_lead(
    message: InboxMessage, integration: Integration, batch: BatchResult, prefix: str, give_up_waiting: bool
) -> BitrixLead | NotFromOpenLines | ActivityMissing | HistoryRefused:
    """Raises what a refused read means (``refusals.py``): a limit, a blocked portal or missing rights wait."""
    entity = _result(batch, f"{prefix}e")
    if not isinstance(entity, dict):
        refused = batch.refusal(f"{prefix}e")
        if refused is None or isinstance(refused, NotFound):
            raise NotFound(f"Bitrix24 {message.entity_type} {message.entity_id} not found")
        raise refused
    activity = _activity(batch, prefix)
    contact = _contact_of(entity, batch, prefix)
    history, history_refused = _history_of(activity, batch, prefix)
    if history_refused is not None and not give_up_waiting:
        return HistoryRefused(code=history_refused)

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
        history_refused=history_refused,
    )


def _result(batch: BatchResult, key: str) -> Any:
    return batch.results.get(key)


def _raise_unless_gone(batch: BatchResult, key: str) -> None:
    refused = batch.refusal(key)
    if refused is not None and not isinstance(refused, NotFound):
        raise refused


def _activity(batch: BatchResult, prefix: str) -> dict[str, Any] | None:
    """The conversation's open-lines activity, the first one bound to the entity; a refused read raises."""
    _raise_unless_gone(batch, f"{prefix}a")
    activities = _result(batch, f"{prefix}a")
    if isinstance(activities, dict):  # a PHP list can arrive as a map
        activities = list(activities.values())
    if isinstance(activities, list) and activities and isinstance(activities[0], dict):
        return activities[0]
    return None


def _contact_of(entity: dict[str, Any], batch: BatchResult, prefix: str) -> dict[str, Any] | None:
    """The entity's own contact, or None: whatever else the chained read returned (contact #1) is dropped."""
    contact_id = as_id(entity.get("CONTACT_ID"))
    if contact_id is None:
        return None
    contact = _result(batch, f"{prefix}c")
    if isinstance(contact, dict) and as_id(contact.get("ID")) == contact_id:
        return contact
    _raise_unless_gone(batch, f"{prefix}c")  # a contact deleted since is no contact; a refusal is not that
    return None


def _history_of(
    activity: dict[str, Any] | None, batch: BatchResult, prefix: str
) -> tuple[dict[str, Any] | None, str | None]:
    """(the session's transcript, the code it was refused with). A transcript of another session is dropped: when
    the activity was not read, ``SESSION_ID`` resolves to every result so far and the CRM reads session 1."""
    session = as_id((activity or {}).get("ASSOCIATED_ENTITY_ID"))
    if session is None:
        return None, None
    history = _result(batch, f"{prefix}h")
    if isinstance(history, dict) and as_id(history.get("sessionId")) == session:
        return history, None
    refused: CrmError | None = batch.refusal(f"{prefix}h")
    if isinstance(refused, InsufficientRights):
        return None, refused.code or "access_denied"
    if refused is not None and refused.retryable:  # a limit or a blocked portal: the whole event waits
        raise refused
    return None, None


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

"""The webhooks that never came, rebuilt from what the CRM lists: shared by the sweep and the backfill.

A conversation found in a list goes into the pipeline as the inbox message its webhook would have been, with its
``source`` (sweep, backfill), so that the worker, the ledger and the lead are the same whichever way it came.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from leadbridge.amocrm.client import AmoClient
from leadbridge.amocrm.enrich import talk_from_api
from leadbridge.bitrix24.client import BitrixClient
from leadbridge.crm_values import as_dict, as_id, dicts
from leadbridge.integration import Integration
from leadbridge.queues import InboxMessage, received_stamp

EVENTS = {"lead": "ONCRMLEADADD", "deal": "ONCRMDEALADD"}
AMO_EVENT_TYPES = ("incoming_chat_message",)
BITRIX_PAGE = 50  # crm.*.list answers 50 rows a page


def amo_talks_page(client: AmoClient, since: int, until: int, page: int) -> tuple[list[str], bool]:
    """The talks with an incoming chat message in ``[since, until]``: one page (100 messages) of the events log,
    and whether there is a next page."""
    events, more = client.list_events(AMO_EVENT_TYPES, since, until, page)
    talk_ids: dict[str, None] = {}  # ordered and deduplicated in one pass (a list's ``in`` made this quadratic)
    for event in events:
        for value in dicts(event.get("value_after")):
            talk_id = as_id(as_dict(value.get("message")).get("talk_id"))
            if talk_id:
                talk_ids.setdefault(talk_id, None)
    return list(talk_ids), more


def amo_talk_message(
    integration: Integration,
    account_id: str,
    talk_id: str,
    talk: dict[str, Any],
    now: float,
    source: str,
    extra: dict[str, Any] | None = None,
) -> InboxMessage:
    """The ``talk.add`` webhook a talk read from the API would have been."""
    payload = {"talk_id": talk_id, "updated_at": as_id(talk.get("updated_at")), **talk_from_api(talk), **(extra or {})}
    return _recovered(integration, account_id, "talk.add", "talk", talk_id, payload, now, source)


def bitrix_entity_message(
    integration: Integration,
    member_id: str,
    entity: str,
    row: dict[str, Any],
    now: float,
    source: str,
    extra: dict[str, Any] | None = None,
) -> InboxMessage:
    """The ``ONCRM{LEAD|DEAL}ADD`` event a listed Bitrix24 lead or deal would have been."""
    event = EVENTS[entity]
    payload = {"event": event, "ts": f"{source}-{_digest(row)}", "domain": integration.crm_domain, **(extra or {})}
    return _recovered(integration, member_id, event, entity, str(as_id(row["ID"])), payload, now, source)


def _recovered(
    integration: Integration,
    account: str,
    event: str,
    entity_type: str,
    entity_id: str,
    payload: dict[str, Any],
    now: float,
    source: str,
) -> InboxMessage:
    """The inbox message the lost webhook would have been (``source``: sweep or backfill)."""
    return InboxMessage(
        integration_id=integration.integration_id,
        crm=integration.crm,
        account=account,
        event=event,
        entity_type=entity_type,
        entity_id=entity_id,
        received_at=received_stamp(now),
        payload=payload,
        source=source,
    )


def bitrix_created_page(
    client: BitrixClient, entity: str, since: int, until: int | None, after_id: int
) -> list[dict[str, Any]]:
    """One page (50) of the leads or deals created in ``[since, until)`` with an id above ``after_id``, by id."""
    stamp = datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds")
    filters: dict[str, Any] = {">=DATE_CREATE": stamp, ">ID": after_id}
    if until is not None:
        filters["<DATE_CREATE"] = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
    page = client.call(
        f"crm.{entity}.list",
        {
            "filter": filters,
            "order": {"ID": "ASC"},
            "select": ["ID", "DATE_CREATE"],
            "start": -1,  # no total count: paging by id is what the docs advise for large sets
        },
    )
    return [row for row in dicts(page) if as_id(row.get("ID")) is not None]


def _digest(row: dict[str, Any]) -> str:
    return hashlib.sha256(f"{row.get('ID')}|{row.get('DATE_CREATE')}".encode()).hexdigest()[:12]

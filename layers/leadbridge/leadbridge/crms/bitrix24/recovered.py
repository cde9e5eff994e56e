"""Bitrix24's events that never came, rebuilt from what the portal lists: shared by the sweep and the backfill.

A lead or deal found in a list goes into the pipeline as the inbox message its event would have been,
with its ``source`` (sweep, backfill).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from leadbridge.aws.queues import InboxMessage, recovered_message
from leadbridge.contract.integration import Integration
from leadbridge.crms.bitrix24.client import BitrixClient
from leadbridge.crms.crm_values import as_id, dicts

EVENTS = {"lead": "ONCRMLEADADD", "deal": "ONCRMDEALADD"}
BITRIX_PAGE = 50  # crm.*.list answers 50 rows a page


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
    return recovered_message(integration, member_id, event, entity, str(as_id(row["ID"])), payload, now, source)


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

"""amoCRM's webhooks that never came, rebuilt from what it lists: shared by the sweep and the backfill.

A conversation found in a list goes into the pipeline as the inbox message its webhook would have been, with its
``source`` (sweep, backfill), so that the worker, the ledger and the lead are the same whichever way it came.
"""

from __future__ import annotations

from typing import Any

from leadbridge.aws.queues import InboxMessage, recovered_message
from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.amocrm.enrich import talk_from_api
from leadbridge.crms.crm_values import as_dict, as_id, dicts

AMO_EVENT_TYPES = ("incoming_chat_message",)


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
    return recovered_message(integration, account_id, "talk.add", "talk", talk_id, payload, now, source)

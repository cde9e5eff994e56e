"""amoCRM's answers to the cabinet's pickers (crm_platform/custom-fields, leads_pipelines, sources-api, events).

- Fields: ``GET /api/v4/leads/custom_fields`` and ``/contacts/custom_fields``, every page (``limit`` at most 250).
  A session id is text: ``text``, ``textarea`` and ``tracking_data`` can hold it; a number, a list or a date
  cannot (a ``numeric`` field would turn a long id into a rounded number).
- Channels: amoCRM has no list of an account's connected messengers (the sources API lists only an integration's
  own sources, reference A.5). So the channels are what the account's chats came from lately (the origins of
  ``incoming_chat_message`` events of the last 30 days), the integration's own sources (``origin_code``, an admin's
  grant; 204 when none), and every origin ``channels.py`` knows, marked as such: the keys a mapping can meet.
- Pipelines: ``GET /api/v4/leads/pipelines`` (at most 50, each with its statuses; one answer, no pages).
"""

from __future__ import annotations

import time

from leadbridge.crms.amocrm.channels import ORIGINS, channel_for_origin
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.crm_lists import CrmChannel, CrmField, CrmPipeline, CrmStage
from leadbridge.crms.crm_values import as_dict, as_id, dicts
from leadbridge.http.errors import InsufficientRights

SESSION_TYPES = frozenset({"text", "textarea", "tracking_data"})
FIELD_PAGES = 20  # 250 a page: 5,000 fields of an entity, far above what an account has
CHAT_DAYS = 30
CHAT_EVENT_PAGES = 3  # the newest 300 incoming messages: the channels in daily use
ENTITIES = (("leads", "lead"), ("contacts", "contact"))


class AmoLists:
    def __init__(self, client: AmoClient, now: float | None = None) -> None:
        self.client = client
        self.now = now

    def fields(self) -> list[CrmField]:
        found: list[CrmField] = []
        for path_entity, entity in ENTITIES:
            items, _ = self.client.all_pages(
                f"/api/v4/{path_entity}/custom_fields", "custom_fields", {"limit": "250"}, FIELD_PAGES
            )
            for item in items:
                field_id = as_id(item.get("id"))
                if field_id is None:
                    continue
                kind = str(item.get("type") or "")[:40]
                name = str(item.get("name") or "")[:200]
                found.append(CrmField(field_id, name, kind, entity, kind in SESSION_TYPES))
        return found

    def channels(self) -> list[CrmChannel]:
        seen: dict[str, CrmChannel] = {}
        since = int(self.now if self.now is not None else time.time()) - CHAT_DAYS * 86_400
        params = {"filter[type][]": "incoming_chat_message", "filter[created_at][from]": str(since), "limit": "100"}
        events, _ = self.client.all_pages("/api/v4/events", "events", params, CHAT_EVENT_PAGES)
        for event in events:
            for value in dicts(event.get("value_after")):
                origin = str(as_dict(value.get("message")).get("origin") or "").strip()[:200]
                if origin and origin not in seen:
                    seen[origin] = _channel(origin, origin, "account_chats")
        try:
            sources, _ = self.client.all_pages("/api/v4/sources", "sources", {}, 1)
        except InsufficientRights:
            sources = []  # an admin's method: a manager's grant simply does not list them
        for source in sources:
            origin = str(source.get("origin_code") or "").strip()[:200]
            if origin and origin not in seen:
                seen[origin] = _channel(origin, str(source.get("name") or origin)[:200], "account_source")
        for origin in ORIGINS:
            seen.setdefault(origin, _channel(origin, origin, "known_origin"))
        return list(seen.values())

    def pipelines(self) -> list[CrmPipeline]:
        items, _ = self.client.all_pages("/api/v4/leads/pipelines", "pipelines", {}, 1)
        found: list[CrmPipeline] = []
        for item in items:
            pipeline_id = as_id(item.get("id"))
            if pipeline_id is None:
                continue
            stages = [
                CrmStage(stage_id, str(status.get("name") or "")[:200])
                for status in dicts(as_dict(item.get("_embedded")).get("statuses"))
                if (stage_id := as_id(status.get("id"))) is not None
            ]
            found.append(CrmPipeline(pipeline_id, str(item.get("name") or "")[:200], "lead", stages))
        return found


def _channel(origin: str, name: str, where: str) -> CrmChannel:
    channel, _ = channel_for_origin(origin)
    return CrmChannel(key=channel.messenger, name=name, origin=origin, where=where)

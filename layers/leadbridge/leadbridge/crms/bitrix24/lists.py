"""Bitrix24's answers to the cabinet's pickers (b24restdocs: crm userfield lists, imopenlines, imconnector, status).

- Fields: ``crm.lead.userfield.list`` and ``crm.deal.userfield.list``, every page (50 a page, ``next``/``total``).
  The labels come per language unless a ``LANG`` is asked for: Russian, then English, then any. A session id is
  text: a ``string`` field can hold it.
- Channels: the open lines (``imopenlines.config.list.get``), the connectors the portal offers (``imconnector.list``)
  and, in one ``batch``, which of them is connected on which line (``imconnector.status``). A user who may not list
  connectors (the method needs the right to change them) gets every connector ``channels.py`` knows instead.
- Pipelines: the lead statuses (``crm.status.list``, ``ENTITY_ID=STATUS``), and the deal categories
  (``crm.category.list``, ``entityTypeId=2``) with each one's stages (``DEAL_STAGE``, ``DEAL_STAGE_<id>``) in one batch.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from leadbridge.crms.bitrix24.channels import CONNECTORS, channel_for_connector
from leadbridge.crms.bitrix24.client import MAX_BATCH_COMMANDS, BitrixClient
from leadbridge.crms.crm_lists import CrmChannel, CrmField, CrmPipeline, CrmStage
from leadbridge.crms.crm_values import as_dict, as_id, dicts, positive_int
from leadbridge.http.errors import InsufficientRights

SESSION_TYPES = frozenset({"string"})
FIELD_PAGES = 40  # 50 a page
LINE_PAGES = 4
STATUS_BATCHES = 4  # up to 200 line x connector pairs looked at
DEAL = 2  # crm.category.list's entityTypeId of deals


class BitrixLists:
    def __init__(self, client: BitrixClient) -> None:
        self.client = client

    def fields(self) -> list[CrmField]:
        found: list[CrmField] = []
        for entity in ("lead", "deal"):
            rows, _ = self.client.listing(f"crm.{entity}.userfield.list", {"order": {"SORT": "ASC"}}, FIELD_PAGES)
            for row in dicts(rows):
                code = str(row.get("FIELD_NAME") or "")[:100]
                if not code:
                    continue
                kind = str(row.get("USER_TYPE_ID") or "")[:40]
                label = _label(row.get("EDIT_FORM_LABEL")) or _label(row.get("LIST_COLUMN_LABEL")) or code
                found.append(CrmField(code, label[:200], kind, entity, kind in SESSION_TYPES))
        return found

    def channels(self) -> list[CrmChannel]:
        params = {"PARAMS": {"select": ["ID", "LINE_NAME"]}}
        lines, _ = self.client.listing("imopenlines.config.list.get", params, LINE_PAGES)
        line_names = {
            line_id: str(line.get("LINE_NAME") or "")[:200]
            for line in dicts(lines)
            if (line_id := as_id(line.get("ID"))) is not None
        }
        try:
            offered = as_dict(self.client.call("imconnector.list", {}))
        except InsufficientRights:
            return [_channel(c, c, "known_connector") for c in CONNECTORS]
        pairs = [(line, str(connector)[:100]) for line in sorted(line_names) for connector in offered]
        found: dict[tuple[str, str], CrmChannel] = {}
        for start in range(0, min(len(pairs), MAX_BATCH_COMMANDS * STATUS_BATCHES), MAX_BATCH_COMMANDS):
            chunk = pairs[start : start + MAX_BATCH_COMMANDS]
            commands = {
                f"s{i}": "imconnector.status?" + urlencode({"LINE": line, "CONNECTOR": connector})
                for i, (line, connector) in enumerate(chunk)
            }
            result = self.client.batch(commands)
            for i, (line, connector) in enumerate(chunk):
                status = as_dict(result.results.get(f"s{i}"))
                if status.get("STATUS") is True or status.get("CONFIGURED") is True:
                    name = f"{str(offered.get(connector) or connector)[:100]} ({line_names[line] or line})"
                    found[(line, connector)] = _channel(connector, name, f"open_line {line}")
        return list(found.values())

    def pipelines(self) -> list[CrmPipeline]:
        categories = dicts(as_dict(self.client.call("crm.category.list", {"entityTypeId": DEAL})).get("categories"))
        named = [(_category_id(c), str(c.get("name") or "")[:200]) for c in categories]
        deals = [(cid, name) for cid, name in named if cid is not None][: MAX_BATCH_COMMANDS - 1]
        commands = {"lead": "crm.status.list?" + urlencode({"filter[ENTITY_ID]": "STATUS"})}
        for cid, _ in deals:
            entity_id = "DEAL_STAGE" if cid == "0" else f"DEAL_STAGE_{cid}"
            commands[f"c{cid}"] = "crm.status.list?" + urlencode({"filter[ENTITY_ID]": entity_id})
        result = self.client.batch(commands)
        refused = result.refusal("lead")
        if refused is not None:
            raise refused
        found = [CrmPipeline("STATUS", "Leads", "lead", _stages(result.results.get("lead")))]
        for cid, name in deals:
            found.append(CrmPipeline(cid, name, "deal", _stages(result.results.get(f"c{cid}"))))
        return found


def _stages(rows: Any) -> list[CrmStage]:
    """A directory's items in the CRM's order (``SORT``, a number sent as a string)."""
    ordered = sorted(dicts(rows), key=lambda row: positive_int(row.get("SORT")) or 0)
    return [
        CrmStage(str(row["STATUS_ID"])[:100], str(row.get("NAME") or "")[:200])
        for row in ordered
        if isinstance(row.get("STATUS_ID"), str) and row["STATUS_ID"]
    ]


def _category_id(category: dict[str, Any]) -> str | None:
    value = category.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value < 10**9:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        return str(int(value))
    return None


def _label(value: Any) -> str:
    """A label as a string, or per language (``{"ru": ..., "en": ...}``) when no ``LANG`` was asked for."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for lang in ("ru", "en", *value):
            if isinstance(value.get(lang), str) and value[lang]:
                return str(value[lang])
    return ""


def _channel(connector: str, name: str, where: str) -> CrmChannel:
    channel, _ = channel_for_connector(connector)
    return CrmChannel(key=channel.messenger, name=name, origin=connector, where=where)

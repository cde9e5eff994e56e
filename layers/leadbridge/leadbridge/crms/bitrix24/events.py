"""Bitrix24 event deliveries (outgoing webhook or application) parsed out of the bracket form.

Application deliveries also carry the triggering user's OAuth tokens in ``auth[...]``: they are read by nobody,
never stored and never logged; only ``domain``, ``member_id`` and ``application_token`` are used.
"""

from __future__ import annotations

from typing import NamedTuple

from leadbridge.crms.formdata import FormNode, text

ENTITY_BY_EVENT = {"ONCRMLEADADD": "lead", "ONCRMDEALADD": "deal"}


class ParsedBitrixEvent(NamedTuple):
    event: str | None
    entity_type: str | None  # lead | deal when the event is one we process
    entity_id: str | None
    ts: str | None
    domain: str | None
    member_id: str | None
    application_token: str | None
    is_application_delivery: bool

    def payload(self) -> dict[str, str | None]:
        return {"event": self.event, "ts": self.ts, "domain": self.domain}


def parse_bitrix_event(form: FormNode) -> ParsedBitrixEvent:
    event = text(form, "event")
    event = event.upper() if event else None
    entity_id = text(form, "data", "FIELDS", "ID")
    if entity_id is not None and not (entity_id.isascii() and entity_id.isdigit() and len(entity_id) <= 20):
        entity_id = None
    domain = text(form, "auth", "domain")
    return ParsedBitrixEvent(
        event=event,
        entity_type=ENTITY_BY_EVENT.get(event or ""),
        entity_id=entity_id,
        ts=text(form, "ts"),
        domain=domain.lower() if domain else None,
        member_id=text(form, "auth", "member_id"),
        application_token=text(form, "auth", "application_token"),
        is_application_delivery=text(form, "auth", "access_token") is not None,
    )

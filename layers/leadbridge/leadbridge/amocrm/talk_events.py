"""amoCRM talk webhooks ("Беседа добавлена" / "Беседа изменена") parsed out of the bracket form.

Each ``talk[add][i]`` / ``talk[update][i]`` item becomes a :class:`TalkEvent`. Every value arrives as a string;
fields may be missing or empty. Other entity blocks (leads, contacts, unsorted, message...) are only counted.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from leadbridge.formdata import FormNode, flag, items, text

TALK_ACTIONS = ("add", "update")
_EVENT_NAME = re.compile(r"[a-z_]{1,30}\.[a-z_]{1,30}")
_LEAD_TYPES = {"lead", "leads", "2"}
_CUSTOMER_TYPES = {"customer", "customers", "12"}


class TalkEvent(NamedTuple):
    action: str
    talk_id: str
    created_at: str | None
    updated_at: str | None
    contact_id: str | None
    chat_id: str | None
    entity_id: str | None
    entity_type: str | None  # normalised: lead | customer | None
    origin: str | None
    is_in_work: bool | None
    is_read: bool | None

    def payload(self) -> dict[str, str | bool | None]:
        return {
            "talk_id": self.talk_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "contact_id": self.contact_id,
            "chat_id": self.chat_id,
            "entity_id": self.entity_id,
            "entity_type": self.entity_type,
            "origin": self.origin,
            "is_in_work": self.is_in_work,
            "is_read": self.is_read,
        }


class ParsedAmoWebhook(NamedTuple):
    account_id: str | None
    subdomain: str | None
    talks: list[TalkEvent]
    malformed_talks: int
    other_events: dict[str, int]


def parse_amo_webhook(form: FormNode) -> ParsedAmoWebhook:
    talks: list[TalkEvent] = []
    malformed = 0
    talk_block = form.get("talk")
    for action in TALK_ACTIONS:
        block = talk_block.get(action) if isinstance(talk_block, dict) else None
        for item in items(block):
            event = _talk(action, item)
            if event is None:
                malformed += 1
            else:
                talks.append(event)
    other: dict[str, int] = {}
    for entity, block in form.items():
        if entity in {"talk", "account", "message", "outgoing_message"} or not isinstance(block, dict):
            continue
        for action, entries in block.items():
            count = len(items(entries)) or 1
            # Names only when they look like amoCRM's (they reach a log line); anything else is counted as unknown.
            name = f"{entity}.{action}" if _EVENT_NAME.fullmatch(f"{entity}.{action}") else "unknown"
            other[name] = other.get(name, 0) + count
    return ParsedAmoWebhook(
        account_id=_digits(text(form, "account", "id")),
        subdomain=text(form, "account", "subdomain"),
        talks=talks,
        malformed_talks=malformed,
        other_events=other,
    )


def _talk(action: str, item: FormNode) -> TalkEvent | None:
    talk_id = _digits(text(item, "talk_id"))
    if talk_id is None:
        return None
    return TalkEvent(
        action=action,
        talk_id=talk_id,
        created_at=_digits(text(item, "created_at")),
        updated_at=_digits(text(item, "updated_at")),
        contact_id=_digits(text(item, "contact_id")),
        chat_id=text(item, "chat_id"),
        entity_id=_digits(text(item, "entity_id")),
        entity_type=_entity_type(text(item, "entity_type")),
        origin=text(item, "origin"),
        is_in_work=flag(item, "is_in_work"),
        is_read=flag(item, "is_read"),
    )


def _digits(value: str | None) -> str | None:
    return value if value is not None and value.isascii() and value.isdigit() and len(value) <= 20 else None


def _entity_type(value: str | None) -> str | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in _LEAD_TYPES:
        return "lead"
    if lowered in _CUSTOMER_TYPES:
        return "customer"
    return None

"""amoCRM's account webhooks, parsed out of the bracket form: talks and chat messages (one hook body carries both).

Talks ("Беседа добавлена" / "Беседа изменена"): each ``talk[add][i]`` / ``talk[update][i]`` item becomes a
:class:`TalkEvent`. Every value arrives as a string; fields may be missing or empty. Other entity blocks (leads,
contacts, unsorted...) are only counted.

Chat messages: ``message[add][i][...]`` for a client's message and ``outgoing_message[add][i][...]`` for a manager's (reference/amocrm.md §1.5: a real Telegram capture, Kommo's
example, third-party fixtures). Each carries the talk it belongs to, so its text can join that talk's lead. A
message never creates a lead by itself. Values are strings; anything malformed is dropped, not guessed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from leadbridge.crms.formdata import FormNode, flag, items, text

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


MESSAGE_BLOCKS = {"message": "incoming", "outgoing_message": "outgoing"}
MAX_TEXT = 4000


class ChatMessageEvent(NamedTuple):
    message_id: str
    talk_id: str
    created_at: str | None
    author: str  # client | operator | system
    text: str

    def payload(self) -> dict[str, str | None]:
        return {
            "message_id": self.message_id,
            "created_at": self.created_at,
            "author": self.author,
            "text": self.text,
        }


def parse_message_events(form: FormNode) -> tuple[list[ChatMessageEvent], dict[str, int]]:
    """The messages of the body, and the items that could not be used, counted by why: ``message_without_talk``
    (amoCRM's own documented example has no ``talk_id``: nothing to join it to), ``unusable_message`` (no id, no
    text and no attachment)."""
    found: list[ChatMessageEvent] = []
    unusable: dict[str, int] = {}
    for block, direction in MESSAGE_BLOCKS.items():
        node = form.get(block)
        for item in items(node.get("add") if isinstance(node, dict) else None):
            event = _message(item, direction)
            if event is None:
                reason = "unusable_message" if _digits(text(item, "talk_id")) else "message_without_talk"
                unusable[reason] = unusable.get(reason, 0) + 1
            else:
                found.append(event)
    return found, unusable


def _message(item: FormNode, direction: str) -> ChatMessageEvent | None:
    talk_id = _digits(text(item, "talk_id"))
    message_id = text(item, "id")
    if talk_id is None or message_id is None or len(message_id) > 100:
        return None
    body = text(item, "text") or ""
    if not body:
        kind = text(item, "attachment", "type") or text(item, "message_type")
        body = f"[{kind[:30]}]" if kind else ""
    if not body:
        return None
    return ChatMessageEvent(
        message_id=message_id,
        talk_id=talk_id,
        created_at=_digits(text(item, "created_at")),
        author=_author(direction, text(item, "author", "type")),
        text=body[:MAX_TEXT],
    )


def _author(direction: str, author_type: str | None) -> str:
    if author_type in {"bot", "system"}:
        return "system"
    if direction == "incoming" or author_type == "external":
        return "client"
    return "operator"

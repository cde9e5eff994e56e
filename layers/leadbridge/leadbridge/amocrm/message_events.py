"""amoCRM chat message webhooks (incoming and outgoing messages), parsed out of the bracket form.

They arrive on the same hook URL as the talk webhooks: ``message[add][i][...]`` for a client's message and
``outgoing_message[add][i][...]`` for a manager's (reference/amocrm.md §1.5: a real Telegram capture, Kommo's
example, third-party fixtures). Each carries the talk it belongs to, so its text can join that talk's lead. A
message never creates a lead by itself. Values are strings; anything malformed is dropped, not guessed.
"""

from __future__ import annotations

from typing import NamedTuple

from leadbridge.formdata import FormNode, items, text

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


def _digits(value: str | None) -> str | None:
    return value if value is not None and value.isascii() and value.isdigit() and len(value) <= 20 else None

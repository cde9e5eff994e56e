"""The open-lines transcript (``imopenlines.session.history.get``) as plain text messages, and the session marker.

BB-codes are removed; ``[br]`` becomes a line break and ``[url=x]text[/url]`` keeps its text. Sender ``0`` is the
system; a user flagged ``connector`` is the client; everyone else is an operator (bots count as system).
The site script (``setCustomData``) puts ``leadbridge_session=<id>`` into the chat; Bitrix24 posts it as a
system message with an attach, so the marker is looked for in texts and attaches alike.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from leadbridge.lead import Chat, ChatMessage

SESSION_MARKER = "leadbridge_session"
_MARKER = re.compile(SESSION_MARKER + r"\s*[=:]\s*([A-Za-z0-9._-]{1,100})")
_BR = re.compile(r"\[br\]", re.I)
_TAG = re.compile(r"\[/?(?:[a-z*]+)(?:=[^\]]*)?\]", re.I)
MAX_MESSAGES = 500
MAX_TEXT = 4000


def plain_text(text: str) -> str:
    return _TAG.sub("", _BR.sub("\n", text)).strip()


def transcript(history: dict[str, Any] | None) -> Chat | None:
    if not isinstance(history, dict):
        return None
    messages = history.get("message")
    if isinstance(messages, list):
        messages = {str(i): m for i, m in enumerate(messages)}
    if not isinstance(messages, dict):
        return None
    raw_users = history.get("users")
    users: dict[str, Any] = raw_users if isinstance(raw_users, dict) else {}
    ordered = sorted((m for m in messages.values() if isinstance(m, dict)), key=_order)
    out: list[ChatMessage] = []
    for message in ordered[:MAX_MESSAGES]:
        text = plain_text(str(message.get("text") or ""))
        if not text:
            attach_text = _attach_text(message)
            if not attach_text:
                continue
            text = attach_text
        out.append(ChatMessage(at=_when(message.get("date")), author=_author(message, users), text=text[:MAX_TEXT]))
    return Chat(messages=out)


def session_marker(history: dict[str, Any] | None) -> str | None:
    if not isinstance(history, dict):
        return None
    found = _MARKER.search(json.dumps(history.get("message") or {}, ensure_ascii=False))
    return found[1] if found else None


def _order(message: dict[str, Any]) -> tuple[str, int]:
    raw_id = str(message.get("id") or "0")
    return (str(message.get("date") or ""), int(raw_id) if raw_id.isdigit() else 0)


def _author(message: dict[str, Any], users: dict[str, Any]) -> Literal["client", "operator", "system"]:
    sender = str(message.get("senderid") or message.get("senderId") or "0")
    if sender == "0":
        return "system"
    found = users.get(sender)
    user: dict[str, Any] = found if isinstance(found, dict) else {}
    if user.get("connector"):
        return "client"
    if user.get("bot"):
        return "system"
    return "operator"


def _when(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _attach_text(message: dict[str, Any]) -> str:
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    parts: list[str] = []
    for attach in params.get("attach") or [] if isinstance(params, dict) else []:
        for block in (attach or {}).get("blocks") or [] if isinstance(attach, dict) else []:
            if isinstance(block, dict) and isinstance(block.get("message"), str):
                parts.append(plain_text(block["message"]))
    return "\n".join(p for p in parts if p)

"""The open-lines transcript (``imopenlines.session.history.get``) as plain text messages, and the session marker.

BB-codes are removed; ``[br]`` becomes a line break and ``[url=x]text[/url]`` keeps its text. Sender ``0`` is the
system; a user flagged ``connector`` is the client; everyone else is an operator (bots count as system).
The site script (``setCustomData``) puts ``leadbridge_session=<id>`` into the chat; Bitrix24 posts it as a
system message with an attach, so the marker is looked for in texts and attaches alike. Messages are ordered by
their instant (a session across a clock change, or dates with different offsets, stays in order), then by id.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from leadbridge.contract.lead import Chat, ChatMessage
from leadbridge.crms.crm_values import as_dict, dicts, iso_time

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
    if not isinstance(messages, dict | list):
        return None
    users = as_dict(history.get("users"))
    ordered = sorted(dicts(messages), key=_order)
    out: list[ChatMessage] = []
    for message in ordered[:MAX_MESSAGES]:
        text = plain_text(str(message.get("text") or "")[: MAX_TEXT * 2])
        if not text:
            attach_text = _attach_text(message)
            if not attach_text:
                continue
            text = attach_text
        out.append(ChatMessage(at=iso_time(message.get("date")), author=_author(message, users), text=text[:MAX_TEXT]))
    return Chat(messages=out)


def session_marker(history: dict[str, Any] | None) -> str | None:
    if not isinstance(history, dict):
        return None
    found = _MARKER.search(json.dumps(history.get("message") or {}, ensure_ascii=False))
    return found[1] if found else None


def _order(message: dict[str, Any]) -> tuple[float, int]:
    raw_id = str(message.get("id") or "0")
    moment = iso_time(message.get("date"))
    return (moment.timestamp() if moment else 0.0, int(raw_id) if raw_id.isascii() and raw_id.isdigit() else 0)


def _author(message: dict[str, Any], users: dict[str, Any]) -> Literal["client", "operator", "system"]:
    sender = str(message.get("senderid") or message.get("senderId") or "0")[:20]
    if sender == "0":
        return "system"
    found = users.get(sender)
    user: dict[str, Any] = found if isinstance(found, dict) else {}
    if user.get("connector"):
        return "client"
    if user.get("bot"):
        return "system"
    return "operator"


def _attach_text(message: dict[str, Any]) -> str:
    parts: list[str] = []
    for attach in dicts(as_dict(message.get("params")).get("attach")):
        for block in dicts(attach.get("blocks")):
            if isinstance(block.get("message"), str):
                parts.append(plain_text(block["message"][:MAX_TEXT]))
    return "\n".join(p for p in parts if p)

"""amoCRM digital-pipeline trigger webhooks (a widget's ``dp/webhook_url``), parsed (reference E.1, seed 004).

amoCRM posts them as a bracket form (``event[type]=15&event[data][id]=...&subdomain=...&account_id=...``); some
senders and older texts use the same tree as JSON, so both are read into one shape. Values are strings on the wire
and anything malformed is refused, not guessed. Only leads (``element_type`` 2) and the triggers that can announce
a new request are kept: 1 lead added, 14 status changed, 15 appeared in status, 19 incoming chat message.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from leadbridge.formdata import FormDataError, FormNode, parse_form, text

LEAD_ELEMENT = "2"
TRIGGER_TYPES = {
    "1": "lead_added",
    "14": "lead_status_changed",
    "15": "lead_appeared_in_status",
    "19": "chat",
}
CHAT_TRIGGER = "19"


class PipelineTrigger(NamedTuple):
    type: str  # the numeric code, as a string ("15")
    type_code: str  # its name (lead_appeared_in_status)
    lead_id: str
    status_id: str | None
    pipeline_id: str | None
    time: str | None

    @property
    def is_chat(self) -> bool:
        return self.type == CHAT_TRIGGER

    def payload(self) -> dict[str, str | None]:
        return {
            "trigger": self.type,
            "trigger_code": self.type_code,
            "status_id": self.status_id,
            "pipeline_id": self.pipeline_id,
            "time": self.time,
        }


class ParsedTrigger(NamedTuple):
    subdomain: str | None
    account_id: str | None
    trigger: PipelineTrigger | None  # None: a well-formed call about something that is no lead's request
    ignored: str | None  # what was ignored, for metrics (never a value from the body)


class MalformedTrigger(ValueError):
    pass


def read_tree(body: bytes, content_type: str) -> FormNode:
    """The body as nested dicts of strings, whether amoCRM sent a bracket form or JSON."""
    return _json_tree(body) if "json" in content_type.lower() or body[:1] == b"{" else _form_tree(body)


def parse_trigger(body: bytes, content_type: str) -> ParsedTrigger:
    return trigger_from_tree(read_tree(body, content_type))


def trigger_from_tree(tree: FormNode) -> ParsedTrigger:
    event = tree.get("event")
    if not isinstance(event, dict):
        raise MalformedTrigger("no event")
    kind = _digits(text(event, "type"))
    lead_id = _digits(text(event, "data", "id"))
    if kind is None or lead_id is None:
        raise MalformedTrigger("no event type or entity id")
    subdomain = text(tree, "subdomain")
    account_id = _digits(text(tree, "account_id"))
    if text(event, "data", "element_type") not in {None, LEAD_ELEMENT}:
        return ParsedTrigger(subdomain, account_id, None, "not_a_lead")
    if kind not in TRIGGER_TYPES:
        return ParsedTrigger(subdomain, account_id, None, f"trigger_{kind}")
    trigger = PipelineTrigger(
        type=kind,
        type_code=TRIGGER_TYPES[kind],
        lead_id=lead_id,
        status_id=_digits(text(event, "data", "status_id")),
        pipeline_id=_digits(text(event, "data", "pipeline_id")),
        time=_digits(text(event, "time")),
    )
    return ParsedTrigger(subdomain[:100] if subdomain else None, account_id, trigger, None)


def _form_tree(body: bytes) -> FormNode:
    try:
        return parse_form(body)
    except FormDataError as exc:
        raise MalformedTrigger("malformed form") from exc


def _json_tree(body: bytes) -> FormNode:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedTrigger("malformed JSON") from exc
    if not isinstance(value, dict):
        raise MalformedTrigger("not a JSON object")
    return _as_form(value, 0)


def _as_form(value: dict[str, Any], depth: int) -> FormNode:
    """JSON in the form's shape: nested dicts of strings (numbers as the form would carry them)."""
    if depth > 8:
        raise MalformedTrigger("too deep")
    node: FormNode = {}
    for key, item in list(value.items())[:200]:
        if isinstance(item, dict):
            node[str(key)] = _as_form(item, depth + 1)
        elif isinstance(item, bool):
            node[str(key)] = "1" if item else "0"
        elif isinstance(item, int | str):
            node[str(key)] = str(item)[:500]
    return node


def _digits(value: str | None) -> str | None:
    return value if value is not None and value.isascii() and value.isdigit() and 0 < len(value) <= 20 else None

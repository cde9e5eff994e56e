"""amoCRM digital-pipeline webhooks, parsed: a widget's ``dp/webhook_url`` and the stage action «API: отправить
webhook» (reference E.1, E.2, seed 004).

- The widget's trigger: ``event[type]=15&event[data][id]=...&subdomain=...&account_id=...``, one lead. Only leads
  (``element_type`` 2) and the triggers that can announce a new request are kept: 1 lead added, 14 status changed,
  15 appeared in status, 19 incoming chat message; a lead that left the trigger's stage (``direction_of_movement``
  ``went_from_trigger``) announces nothing.
- The stage action: ``leads[<action>][i][id]=...`` (``status``, ``chat``, ``call_in``, ``mail_in``, ``site_visit``,
  ``period``) with the account as in account webhooks (``account[id]``, ``account[subdomain]``), any number of
  leads, no ``event`` block. ``status`` is the lead arriving in the stage (as trigger 15), ``chat`` an incoming chat
  message (as 19); the other actions announce no chat. Sent once, never retried: a body we can read is never
  refused for what it holds.
Both come as a bracket form, or as the same tree in JSON; values are strings on the wire and anything malformed is
refused, not guessed.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from leadbridge.crms.formdata import FormDataError, FormNode, parse_form, text

LEAD_ELEMENT = "2"
TRIGGER_TYPES = {
    "1": "lead_added",
    "14": "lead_status_changed",
    "15": "lead_appeared_in_status",
    "19": "chat",
}
CHAT_TRIGGER = "19"
STAGE_ACTIONS = {"status": "15", "chat": "19"}  # the stage action's keys that announce a request, as trigger types
OTHER_STAGE_ACTIONS = {"call_in", "mail_in", "site_visit", "period"}
LEFT_THE_STAGE = "went_from_trigger"
MAX_TRIGGERS = 50  # leads in one stage-action body
MAX_JSON_VALUE_CHARS = 4096  # a Salesbot's signed token is 500+ characters; the body's own size is capped before


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
    triggers: tuple[PipelineTrigger, ...]  # empty: a well-formed call about nothing that is a lead's request
    ignored: dict[str, int]  # what was left out and why, for metrics (never a value from the body)


class MalformedTrigger(ValueError):
    pass


def read_tree(body: bytes, content_type: str) -> FormNode:
    """The body as nested dicts of strings, whether amoCRM sent a bracket form or JSON."""
    return _json_tree(body) if "json" in content_type.lower() or body[:1] == b"{" else _form_tree(body)


def parse_trigger(body: bytes, content_type: str) -> ParsedTrigger:
    return trigger_from_tree(read_tree(body, content_type))


def trigger_from_tree(tree: FormNode) -> ParsedTrigger:
    if isinstance(tree.get("event"), dict):
        return _widget_trigger(tree)
    if isinstance(tree.get("leads"), dict) or isinstance(tree.get("customers"), dict):
        return _stage_action(tree)
    raise MalformedTrigger("neither an event nor a stage action")


def _widget_trigger(tree: FormNode) -> ParsedTrigger:
    event = tree["event"]
    assert isinstance(event, dict)
    kind = _digits(text(event, "type"))
    lead_id = _digits(text(event, "data", "id"))
    if kind is None or lead_id is None:
        raise MalformedTrigger("no event type or entity id")
    subdomain, account_id = _short(text(tree, "subdomain")), _digits(text(tree, "account_id"))
    if text(event, "data", "element_type") not in {None, LEAD_ELEMENT}:
        return ParsedTrigger(subdomain, account_id, (), {"not_a_lead": 1})
    if kind not in TRIGGER_TYPES:
        return ParsedTrigger(subdomain, account_id, (), {f"trigger_{kind}": 1})
    if text(event, "data", "direction_of_movement") == LEFT_THE_STAGE:
        return ParsedTrigger(subdomain, account_id, (), {LEFT_THE_STAGE: 1})
    data = event["data"] if isinstance(event.get("data"), dict) else {}
    assert isinstance(data, dict)
    return ParsedTrigger(subdomain, account_id, (_trigger(kind, lead_id, data, _digits(text(event, "time"))),), {})


def _stage_action(tree: FormNode) -> ParsedTrigger:
    subdomain = _short(text(tree, "account", "subdomain") or text(tree, "subdomain"))
    account_id = _digits(text(tree, "account", "id") or text(tree, "account_id"))
    triggers: list[PipelineTrigger] = []
    ignored: dict[str, int] = {}
    if isinstance(tree.get("customers"), dict):
        ignored["not_a_lead"] = 1
    leads = tree.get("leads")
    for action, items in leads.items() if isinstance(leads, dict) else []:
        if not isinstance(items, dict):
            ignored["malformed_item"] = ignored.get("malformed_item", 0) + 1
            continue
        kind = STAGE_ACTIONS.get(action)
        for item in items.values():
            lead_id = _digits(text(item, "id")) if isinstance(item, dict) else None
            if lead_id is None:  # sent once: the body's other leads still count
                ignored["malformed_item"] = ignored.get("malformed_item", 0) + 1
                continue
            if kind is None:
                reason = f"action_{action}" if action in OTHER_STAGE_ACTIONS else "action_unknown"
                ignored[reason] = ignored.get(reason, 0) + 1
            elif len(triggers) >= MAX_TRIGGERS:
                ignored["too_many_leads"] = ignored.get("too_many_leads", 0) + 1
            else:
                assert isinstance(item, dict)
                triggers.append(_trigger(kind, lead_id, item, None))
    if not triggers and not ignored:
        raise MalformedTrigger("a stage action with no lead")
    return ParsedTrigger(subdomain, account_id, tuple(triggers), ignored)


def _trigger(kind: str, lead_id: str, data: FormNode, moment: str | None) -> PipelineTrigger:
    return PipelineTrigger(
        type=kind,
        type_code=TRIGGER_TYPES[kind],
        lead_id=lead_id,
        status_id=_digits(text(data, "status_id")),
        pipeline_id=_digits(text(data, "pipeline_id")),
        time=moment,
    )


def _short(value: str | None) -> str | None:
    return value[:100] if value else None


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


def _as_form(value: dict[str, Any] | list[Any], depth: int) -> FormNode:
    """JSON in the form's shape: nested dicts of strings (a list as the form's ``[0]``, ``[1]``... keys, numbers as
    the form would carry them)."""
    if depth > 8:
        raise MalformedTrigger("too deep")
    pairs = value.items() if isinstance(value, dict) else enumerate(value)
    node: FormNode = {}
    for key, item in list(pairs)[:200]:
        if isinstance(item, dict | list):
            node[str(key)] = _as_form(item, depth + 1)
        elif isinstance(item, bool):
            node[str(key)] = "1" if item else "0"
        elif isinstance(item, int | str):
            node[str(key)] = str(item)[:MAX_JSON_VALUE_CHARS]
    return node


def _digits(value: str | None) -> str | None:
    return value if value is not None and value.isascii() and value.isdigit() and 0 < len(value) <= 20 else None

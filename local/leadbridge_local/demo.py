"""``make demo``: the whole pipeline on the local stack with the samples in ``events/``.

Starts local AWS (from the template) and the fake CRMs, sets up one amoCRM and one Bitrix24 integration, posts
every sample webhook through the HTTP routes, lets the worker drain the inbox, then connects the site chat channel
(amoCRM's Chats API, the fake amojo) and runs a visitor's conversation in and a manager's reply out; prints the
normalized leads as a table and writes them as JSON lines to ``out/demo-leads.jsonl``. Stops everything it started.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from leadbridge_local.console import OUT_DIR, capture_function_logs, progress
from leadbridge_local.template import REPO_ROOT

EVENTS = REPO_ROOT / "events"


def post_event_file(runner: Any, path: Path) -> tuple[int, str]:
    event = json.loads(path.read_text(encoding="utf-8"))
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    response = runner.post(
        event["rawPath"], raw, event.get("headers", {}).get("content-type", "application/x-www-form-urlencoded")
    )
    return response.status_code, response.text


def lead_row(lead: dict[str, Any]) -> list[str]:
    attribution = lead["attribution"]
    target = (
        f"session {attribution['session_id']}"
        if attribution["kind"] == "session"
        else f"campaign {attribution['campaign_id']}"
        if attribution["campaign_id"] is not None
        else f"source {attribution['source_id']} / site {attribution['site_id']}"
    )
    chat = lead.get("chat") or {}
    channel = lead["channel"]
    return [
        lead["crm"],
        f"{lead['source_entity']['type']} {lead['source_entity']['id']}",
        channel["messenger"] or channel["kind"],
        lead["created_at"],
        lead["contact"]["name"] or "-",
        ", ".join(lead["contact"]["phones"] + lead["contact"]["emails"]) or "-",
        f"{attribution['kind']}: {target}",
        str(len(chat.get("messages", []))) if chat else "-",
    ]


def render_table(leads: list[dict[str, Any]]) -> str:
    header = ["crm", "entity", "channel", "created_at", "contact", "phones / e-mails", "attribution", "chat msgs"]
    rows = [header] + [lead_row(lead) for lead in leads]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def site_chat(runner: Any) -> int:
    """The cabinet's own chat as an amoCRM chat channel: connect it, a visitor's conversation in (the sample in
    ``events/integrations_api/post_chat_messages.json``), and a manager's reply out through the channel's hook."""
    base = "/integrations/demo-amocrm/chat-channel"
    answer = runner.post(base, json.dumps({"title": "Чат на сайте"}), "application/json")
    progress(f"  POST {base}: {answer.status_code} {answer.text}")
    handled: int = runner.drain(timeout=60)
    sample = json.loads((EVENTS / "integrations_api" / "post_chat_messages.json").read_text(encoding="utf-8"))
    answer = runner.post(f"{base}/messages", sample["body"], "application/json")
    progress(f"  POST {base}/messages (post_chat_messages.json): {answer.status_code} {answer.text}")
    handled += runner.drain(timeout=60)
    status = runner.get("/integrations/demo-amocrm/status").json()["chat_channel"]
    conversation = json.loads(sample["body"])["messages"][0]["conversation_id"]
    body, signature = runner.amojo.reply(
        status["scope_id"], conversation, "Здравствуйте! Да, доставим за 2 дня.", int(time.time())
    )
    answer = httpx.post(
        f"{runner.base_url}/hooks/amojo/{status['scope_id']}",
        content=body,
        headers={"Content-Type": "application/json", "X-Signature": signature},
        timeout=30,
    )
    progress(f"  POST /hooks/amojo/<scope> (a manager's reply, signed by amojo): {answer.status_code} {answer.text}")
    return handled


def main() -> int:
    stdout, log_path = capture_function_logs("demo-functions")
    from leadbridge_local.demo_setup import install_demo_integrations  # noqa: PLC0415 - after log capture
    from leadbridge_local.runner import LocalRunner  # noqa: PLC0415

    with LocalRunner(
        amocrm_data=EVENTS / "crm_data" / "amocrm", bitrix24_data=EVENTS / "crm_data" / "bitrix24"
    ) as runner:
        progress(
            f"local stack up: API {runner.base_url}, AWS {runner.stack.endpoint_url}, fake CRMs {runner.crm_server.origin}"
        )
        install_demo_integrations(runner)
        for folder in ("amo_hook", "bitrix_hook"):
            for path in sorted((EVENTS / folder).glob("*.json")):
                status, text = post_event_file(runner, path)
                progress(f"  POST {folder}/{path.name}: {status} {text}")
        handled = runner.drain(timeout=120)
        handled += site_chat(runner)
        leads = runner.take_leads()
        dead = runner.take_messages("InboxDeadLetterQueue")
        replies = [json.loads(m["Body"]) for m in runner.take_messages("ChatRepliesQueue")]
    out = OUT_DIR / "demo-leads.jsonl"
    out.write_text("".join(json.dumps(lead, ensure_ascii=False) + "\n" for lead in leads), encoding="utf-8")
    stdout.write(render_table(leads) + "\n\n")
    stdout.write(f"{len(leads)} leads from {handled} inbox events ({len(dead)} dead-lettered); JSON lines in {out}\n")
    for reply in replies:
        stdout.write(f"site chat reply out (replies queue): {reply['conversation_id']}: {reply['text']}\n")
    stdout.write(f"function logs: {log_path}\n")
    stdout.flush()
    return 0 if leads else 1


if __name__ == "__main__":
    sys.exit(main())

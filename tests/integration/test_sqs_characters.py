"""Every queue writer with a character SQS refuses (U+FFFF; the local SQS refuses it as AWS does): the event, the
lead or the reply arrives, the character replaced by U+FFFD. Without the cleaning each of these failed for ever: a
chat-message webhook answered 503 on every retry, a lead never left the worker, visitor messages answered 500, an
amojo reply was lost."""

from __future__ import annotations

import json
import time
from typing import Any

from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import new_amo_integration, sample_body, talk_fields
from tests.integration.test_chat_channel import api, connect, post_reply, visitor_messages

REFUSED = "\uffff"


def ours(runner: LocalRunner, integration_id: str) -> list[dict[str, Any]]:
    return [lead for lead in runner.take_leads() if lead["integration_id"] == integration_id]


def test_hook_and_worker_writes_survive_a_character_sqs_refuses(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    sub, talk = integration.account_name, 4_301
    runner.amocrm.add_talk(
        sub,
        talk,
        lead_id=43_010,
        contact_id=430_100,
        origin="telegram",
        created_at=1726581298,
        lead={},
        contact={"name": f"Ann{REFUSED}"},  # the CRM's own data: the lead carries it to the leads queue
    )
    url = f"/hooks/amocrm/{integration.integration_id}/{secret}/"
    fields = {
        "account[subdomain]": sub,
        "account[id]": str(account),
        "message[add][0][talk_id]": str(talk),
        "message[add][0][text]": f"привет{REFUSED}",
        "message[add][1][talk_id]": str(talk),
    }
    answer = runner.post(url, sample_body("amo_hook", "message_incoming.json", **fields))
    assert (answer.status_code, answer.json()["accepted"]) == (200, 2)
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", talk, 43_010, 430_100, sub, account))
    assert runner.post(url, body).status_code == 200
    runner.drain(timeout=60)

    [lead] = ours(runner, integration.integration_id)
    assert lead["contact"]["name"] == "Ann\ufffd"
    assert lead["chat"]["messages"][0]["text"] == "привет\ufffd"
    assert runner.take_messages("InboxDeadLetterQueue") == []


def test_chat_channel_writes_survive_a_character_sqs_refuses(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner, session_field=None)
    scope_id = connect(runner, integration)
    messages = [
        {**m, "name": f"{m['name']}{REFUSED}"} | ({"text": f"{m['text']}{REFUSED}"} if "text" in m else {})
        for m in visitor_messages()
    ]
    path = f"/integrations/{integration.integration_id}/chat-channel/messages"
    answer = api(runner, "POST", path, {"messages": messages})
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == len(messages)
    runner.drain(timeout=60)
    assert len(ours(runner, integration.integration_id)) == 1

    conversation = messages[0]["conversation_id"]
    reply, signature = runner.amojo.reply(scope_id, conversation, f"Добрый день{REFUSED}", int(time.time()))
    assert post_reply(runner, scope_id, reply, signature).status_code == 200
    [out] = [json.loads(m["Body"]) for m in runner.take_messages("ChatRepliesQueue")]
    assert out["text"] == "Добрый день\ufffd"

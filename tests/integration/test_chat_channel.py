"""The cabinet's site chat as an amoCRM chat channel, end to end on the local stack: connect, a visitor conversation
in (with its session), one lead, the talk webhook joined, a manager's reply out, delivery back, forged hooks
refused, disconnect. The fake amojo checks every signature as amoCRM does."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from leadbridge.contract.integration import Integration
from leadbridge.contract.lead import lead_id_for
from leadbridge.crms.amocrm.chat_channel.signing import hook_signature
from leadbridge_local.runner import LocalRunner
from tests.conftest import load_event
from tests.integration.helpers import new_amo_integration, sample_body, talk_fields


def api(runner: LocalRunner, method: str, path: str, body: object | None = None) -> httpx.Response:
    content = json.dumps(body).encode() if body is not None else None
    return httpx.request(
        method, runner.base_url + path, content=content, headers={"Content-Type": "application/json"}, timeout=30
    )


def status_of(runner: LocalRunner, integration: Integration) -> dict[str, Any]:
    found: dict[str, Any] = runner.get(f"/integrations/{integration.integration_id}/status").json()["chat_channel"]
    return found


def visitor_messages() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads(load_event("integrations_api", "post_chat_messages.json")["body"])[
        "messages"
    ]
    return messages


def post_reply(runner: LocalRunner, scope_id: str, body: bytes, signature: str) -> httpx.Response:
    return httpx.post(
        f"{runner.base_url}/hooks/amojo/{scope_id}",
        content=body,
        headers={"Content-Type": "application/json", "X-Signature": signature},
        timeout=30,
    )


def connect(runner: LocalRunner, integration: Integration) -> str:
    path = f"/integrations/{integration.integration_id}/chat-channel"
    answer = api(runner, "POST", path, {"title": "Чат на сайте"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "connecting"
    runner.drain(timeout=60)
    channel = status_of(runner, integration)
    assert channel["state"] == "connected", channel
    scope_id: str = channel["scope_id"]
    return scope_id


def test_a_site_chat_conversation_in_and_a_reply_out(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, session_field=None, amo_note_enabled=False)
    messages_path = f"/integrations/{integration.integration_id}/chat-channel/messages"
    assert api(runner, "POST", messages_path, {"messages": visitor_messages()[:1]}).status_code == 409  # not yet

    scope_id = connect(runner, integration)
    amojo_account = runner.amocrm.accounts[integration.account_name].amojo_id
    assert scope_id == f"{runner.amojo.channel_id}_{amojo_account}"

    messages = visitor_messages()
    conversation = messages[0]["conversation_id"]
    assert api(runner, "POST", messages_path, {"messages": messages}).json() == {"accepted": 3}
    assert api(runner, "POST", messages_path, {"messages": messages[:1]}).status_code == 202  # sent again
    runner.drain(timeout=60)

    sent = [m for m in runner.amojo.messages if m["scope_id"] == scope_id]
    assert [m["msgid"] for m in sent] == ["msg-0001", "msg-0002", "msg-0003"]  # once each, in order
    assert sent[0]["sender"]["profile"] == {"phone": "+7 916 555-01-02", "email": "olga@example.ru"}
    assert sent[1]["message"]["type"] == "picture"
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert len(leads) == 1
    [lead] = leads
    assert lead["source_entity"] == {"type": "site_chat", "id": conversation}
    assert lead["lead_id"] == lead_id_for(f"amocrm:{account}:site_chat:{conversation}")
    assert lead["attribution"]["kind"] == "session"
    assert lead["attribution"]["session_id"] == "2814409999"
    assert lead["channel"] == {"kind": "online_chat", "messenger": None, "origin": runner.amojo.channel_code}
    assert lead["contact"]["phones"] == ["+79165550102"]
    assert lead["chat"]["messages"][0]["text"] == messages[0]["text"]

    # amoCRM opened a talk for the chat; its webhook joins the site chat's lead instead of making a second one.
    talk, chat_id = runner.amojo.talk_of(scope_id, conversation)
    fields = talk_fields("add", talk, talk * 10, talk * 100, integration.account_name, account)
    fields |= {"talk[add][0][origin]": runner.amojo.channel_code, "talk[add][0][chat_id]": chat_id}
    hook = sample_body("amo_hook", "talk_add.json", **fields)
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", hook).status_code == 200
    runner.drain(timeout=60)
    assert [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id] == []

    # A manager answers in amoCRM: the reply reaches the replies queue for the cabinet's chat to deliver.
    body, signature = runner.amojo.reply(
        scope_id, conversation, "Здравствуйте, Ольга! Доставляем за 2 дня.", int(time.time())
    )
    assert post_reply(runner, scope_id, body, signature).status_code == 200
    [reply] = [json.loads(m["Body"]) for m in runner.take_messages("ChatRepliesQueue")]
    assert reply["integration_id"] == integration.integration_id
    assert (reply["conversation_id"], reply["visitor_id"]) == (conversation, messages[0]["visitor_id"])
    assert reply["text"].startswith("Здравствуйте, Ольга!")

    # The cabinet delivered it: amoCRM is told so.
    delivery_path = f"/integrations/{integration.integration_id}/chat-channel/delivery"
    report = {"message_id": reply["message_id"], "status": "delivered"}
    assert api(runner, "POST", delivery_path, report).status_code == 202
    runner.drain(timeout=60)
    assert [(m, b["delivery_status"]) for s, m, b in runner.amojo.delivery if s == scope_id] == [
        (reply["message_id"], 1)
    ]

    # Disconnected: the scope is forgotten, a later hook for it finds nothing.
    assert api(runner, "DELETE", f"/integrations/{integration.integration_id}/chat-channel").status_code == 202
    runner.drain(timeout=60)
    assert status_of(runner, integration)["state"] == "disconnected"
    late, late_signature = runner.amojo.reply(scope_id, conversation, "ещё", 2)
    assert post_reply(runner, scope_id, late, late_signature).status_code == 404


def test_a_forged_or_altered_reply_hook_is_refused_and_enqueues_nothing(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner, session_field=None)
    scope_id = connect(runner, integration)
    messages = visitor_messages()[:1]
    path = f"/integrations/{integration.integration_id}/chat-channel/messages"
    assert api(runner, "POST", path, {"messages": messages}).status_code == 202
    runner.drain(timeout=60)
    runner.take_leads()
    conversation = messages[0]["conversation_id"]
    body, signature = runner.amojo.reply(scope_id, conversation, "Добрый день", int(time.time()))

    forged = hook_signature("0" * 40, body)
    altered = body.replace("Добрый день".encode(), "Переведите 1000 ₽".encode())
    last_changed = signature[:-1] + ("1" if signature.endswith("0") else "0")  # always another signature
    for attempt, sig in ((body, forged), (altered, signature), (body, ""), (body, last_changed)):
        assert post_reply(runner, scope_id, attempt, sig).status_code == 401
    assert runner.take_messages("ChatRepliesQueue") == []
    assert post_reply(runner, scope_id, body + b"\n", signature).status_code == 200  # a trailing newline is fine
    assert len(runner.take_messages("ChatRepliesQueue")) == 1


def test_a_reply_hook_for_another_scope_a_stale_one_and_a_repeat_are_refused(runner: LocalRunner) -> None:
    """A body signed for integration A's scope, posted to B's scope URL, is not B's reply; a signed hook dated a
    year ago is a replay, not a delivery; the same reply posted twice is taken once (kept by message id)."""
    first, _, _ = new_amo_integration(runner, session_field=None)
    second, _, _ = new_amo_integration(runner, session_field=None)
    scope_a, scope_b = connect(runner, first), connect(runner, second)
    messages = visitor_messages()[:1]
    conversation = messages[0]["conversation_id"]
    for integration in (first, second):
        path = f"/integrations/{integration.integration_id}/chat-channel/messages"
        assert api(runner, "POST", path, {"messages": messages}).status_code == 202
    runner.drain(timeout=60)
    runner.take_leads()

    body, signature = runner.amojo.reply(scope_a, conversation, "для A", int(time.time()))
    crossed = post_reply(runner, scope_b, body, signature)
    assert (crossed.status_code, crossed.json()) == (403, {"error": "not_this_scope"})
    old, old_signature = runner.amojo.reply(scope_a, conversation, "год назад", int(time.time()) - 365 * 86_400)
    assert post_reply(runner, scope_a, old, old_signature).json() == {"error": "stale_hook"}
    assert runner.take_messages("ChatRepliesQueue") == []

    assert post_reply(runner, scope_a, body, signature).json() == {"accepted": 1, "ignored": 0}
    assert post_reply(runner, scope_a, body, signature).json() == {"accepted": 0, "ignored": 1}  # the repeat
    [reply] = [json.loads(m["Body"]) for m in runner.take_messages("ChatRepliesQueue")]
    assert (reply["integration_id"], reply["text"]) == (first.integration_id, "для A")


def test_a_second_integration_on_the_same_account_cannot_take_the_channel(runner: LocalRunner) -> None:
    """The channel's scope is per account: connecting a second integration of that account would re-point it (the
    first one's replies to the second, the second's visitors into the first one's chats). It gets a 409 until the
    first one's disconnect is done."""
    from dataclasses import replace

    from leadbridge_local.seed import connect_amocrm, install_integration

    first, _, account = new_amo_integration(runner, session_field=None)
    second = replace(first, integration_id=f"{first.integration_id}-2", client_id=f"{first.client_id}-2")
    install_integration(runner, second)
    connect_amocrm(runner, second, account)
    scope = connect(runner, first)

    refused = api(runner, "POST", f"/integrations/{second.integration_id}/chat-channel", {"title": "Чат"})
    assert refused.status_code == 409, refused.text
    assert first.integration_id in refused.json()["detail"]
    assert status_of(runner, first)["scope_id"] == scope  # the first keeps its scope
    assert (
        api(runner, "POST", f"/integrations/{first.integration_id}/chat-channel", {"title": "Чат"}).status_code == 202
    )
    runner.drain(timeout=60)  # asking again is the owner's right

    assert api(runner, "DELETE", f"/integrations/{first.integration_id}/chat-channel").status_code == 202
    runner.drain(timeout=60)
    assert connect(runner, second) == scope  # free once the first one's disconnect is done: now the second's


def test_deactivating_an_integration_frees_its_account_for_another(runner: LocalRunner) -> None:
    from dataclasses import replace

    from leadbridge_local.seed import connect_amocrm, install_integration

    first, _, account = new_amo_integration(runner, session_field=None)
    second = replace(first, integration_id=f"{first.integration_id}-2", client_id=f"{first.client_id}-2")
    install_integration(runner, second)
    connect_amocrm(runner, second, account)
    connect(runner, first)
    assert api(runner, "DELETE", f"/integrations/{first.integration_id}").status_code == 204
    answer = api(runner, "POST", f"/integrations/{second.integration_id}/chat-channel", {"title": "Чат"})
    assert answer.status_code == 202, answer.text  # not a 409 naming the deactivated one
    runner.drain(timeout=60)
    assert status_of(runner, second)["state"] == "connected"


def test_a_failed_connect_holds_the_account_for_nobody(runner: LocalRunner) -> None:
    from dataclasses import replace

    from leadbridge_local.seed import connect_amocrm, install_integration

    first, _, account = new_amo_integration(runner, session_field=None)
    second = replace(first, integration_id=f"{first.integration_id}-2", client_id=f"{first.client_id}-2")
    install_integration(runner, second)
    connect_amocrm(runner, second, account)
    runner.amocrm.accounts[first.account_name].denied_paths = {"/api/v4/account"}  # the amojo id cannot be read
    answer = api(runner, "POST", f"/integrations/{first.integration_id}/chat-channel", {"title": "Чат"})
    assert answer.status_code == 202
    runner.drain(timeout=60)
    assert status_of(runner, first)["state"] == "failed"
    runner.amocrm.accounts[first.account_name].denied_paths = set()
    assert (
        api(runner, "POST", f"/integrations/{second.integration_id}/chat-channel", {"title": "Чат"}).status_code == 202
    )
    runner.drain(timeout=60)
    assert status_of(runner, second)["state"] == "connected"


def test_a_late_reply_is_taken_once_and_a_refused_queue_write_leaves_it_untaken(runner: LocalRunner) -> None:
    """A genuine hook delivered half an hour late is a delivery (a day's window, a repeat still refused). When the
    replies queue refuses it (503), it is not marked taken, so the same hook sent again goes through."""
    integration, _, _ = new_amo_integration(runner, session_field=None)
    scope = connect(runner, integration)
    messages = visitor_messages()[:1]
    path = f"/integrations/{integration.integration_id}/chat-channel/messages"
    assert api(runner, "POST", path, {"messages": messages}).status_code == 202
    runner.drain(timeout=60)
    runner.take_leads()
    body, signature = runner.amojo.reply(scope, messages[0]["conversation_id"], "поздно", int(time.time()) - 1_800)
    runner.stack.moto.fail_sends_to("chat-replies.fifo", ratio=1.0)
    try:
        assert post_reply(runner, scope, body, signature).status_code == 503
    finally:
        runner.stack.moto.fail_sends_to("chat-replies.fifo", ratio=0)
    assert post_reply(runner, scope, body, signature).json() == {"accepted": 1, "ignored": 0}
    assert post_reply(runner, scope, body, signature).json() == {"accepted": 0, "ignored": 1}
    [reply] = [json.loads(m["Body"]) for m in runner.take_messages("ChatRepliesQueue")]
    assert reply["text"] == "поздно"

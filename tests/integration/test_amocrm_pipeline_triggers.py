"""amoCRM's digital pipeline on the local stack: stage triggers joined with talk webhooks, leads without a chat, and
the Salesbot ``widget_request`` that hands over the session without any custom field."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from leadbridge.aws.store.bot_sessions import DynamoBotSessions
from leadbridge.contract.integration import Integration
from leadbridge.contract.lead import lead_id_for
from leadbridge.crms.amocrm.bot_token import sign_bot_token
from leadbridge_local.runner import LocalRunner
from tests.conftest import load_event
from tests.integration.helpers import add_amo_talks, new_amo_integration, post_amo_talks, sample_body

TRIGGER = "trigger_lead_in_stage.json"


def post_trigger(
    runner: LocalRunner, integration: Integration, secret: str, account: int, lead_id: int, kind: str = "15"
) -> httpx.Response:
    fields = {
        "event[data][id]": str(lead_id),
        "event[type]": kind,
        "subdomain": integration.account_name,
        "account_id": str(account),
    }
    path = f"/hooks/amocrm/{integration.integration_id}/{secret}/dp"
    return runner.post(path, sample_body("amo_hook", TRIGGER, **fields))


def post_trigger_json(
    runner: LocalRunner, integration: Integration, secret: str, account: int, lead_id: int
) -> httpx.Response:
    """The sample trigger as JSON (some senders and older texts send the same tree so)."""
    tree: dict[str, Any] = {}
    for key, value in parse_qsl(load_event("amo_hook", TRIGGER)["body"]):
        parts = key.replace("]", "").split("[")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    tree["event"]["data"]["id"] = lead_id
    tree["event"]["type"] = 15
    tree["subdomain"], tree["account_id"] = integration.account_name, account
    path = f"/hooks/amocrm/{integration.integration_id}/{secret}/dp"
    return runner.post(path, json.dumps(tree), content_type="application/json")


def post_salesbot(runner: LocalRunner, integration: Integration, secret: str, body: bytes) -> httpx.Response:
    path = f"/hooks/amocrm/{integration.integration_id}/{secret}/salesbot"
    return runner.post(path, body, content_type="application/json")


def ours(runner: LocalRunner, integration: Integration) -> list[dict[str, Any]]:
    return [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]


def notes_of(runner: LocalRunner, integration: Integration, lead_id: int) -> list[str]:
    account = runner.amocrm.accounts[integration.account_name]
    return [n["params"]["text"] for n in account.notes if n["entity_id"] == lead_id]


def test_a_stage_trigger_and_a_talk_webhook_for_one_chat_give_one_lead(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, session_field=None)
    trigger_first, webhook_first, as_json = 8_101, 8_102, 8_103
    add_amo_talks(runner, integration, [trigger_first, webhook_first, as_json], created_at=int(time.time()) - 60)

    assert post_trigger(runner, integration, secret, account, trigger_first * 10).status_code == 200
    assert post_trigger_json(runner, integration, secret, account, as_json * 10).status_code == 200
    runner.drain(timeout=60)
    post_amo_talks(runner, integration, secret, account, [trigger_first, webhook_first, as_json])
    runner.drain(timeout=60)
    assert post_trigger(runner, integration, secret, account, webhook_first * 10, kind="19").status_code == 200
    runner.drain(timeout=60)

    leads = ours(runner, integration)
    by_talk = {int(lead["source_entity"]["id"]): lead for lead in leads}
    assert len(leads) == 3
    assert set(by_talk) == {trigger_first, webhook_first, as_json}
    for talk, lead in by_talk.items():
        assert lead["source_entity"]["type"] == "talk"
        assert lead["lead_id"] == lead_id_for(f"amocrm:{account}:talk:{talk}")  # the talk's conversation key
        assert lead["channel"]["messenger"] == "telegram"
    note = notes_of(runner, integration, trigger_first * 10)
    assert len(note) == 1
    assert "lead_appeared_in_status" in note[0]  # the card says which trigger announced it


def test_a_trigger_on_a_lead_without_a_chat(runner: LocalRunner) -> None:
    chats_only, secret_a, account_a = new_amo_integration(runner)
    any_lead, secret_b, account_b = new_amo_integration(runner, amo_trigger_leads="any_lead")
    now = int(time.time())
    runner.amocrm.add_lead_without_chat(chats_only.account_name, 8_201, 82_010, now - 30)
    runner.amocrm.add_lead_without_chat(any_lead.account_name, 8_202, 82_020, now - 30)
    assert post_trigger(runner, chats_only, secret_a, account_a, 8_201).status_code == 200
    assert post_trigger(runner, any_lead, secret_b, account_b, 8_202).status_code == 200
    runner.drain(timeout=90)  # both wait once for the events log (10 s) before deciding there is no chat

    leads = runner.take_leads()
    assert [lead for lead in leads if lead["integration_id"] == chats_only.integration_id] == []
    [lead] = [lead for lead in leads if lead["integration_id"] == any_lead.integration_id]
    assert lead["source_entity"] == {"type": "lead", "id": "8202"}
    assert lead["channel"] == {"kind": "crm_stage", "messenger": None, "origin": "dp:lead_appeared_in_status"}
    assert lead["attribution"]["kind"] == "integration_default"


def test_a_trigger_from_another_account_or_without_the_secret_is_refused(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner)
    depth = runner.queue_depth("InboxQueue")
    path = f"/hooks/amocrm/{integration.integration_id}/{secret}/dp"
    other = sample_body("amo_hook", TRIGGER, **{"subdomain": "somebody-else", "account_id": str(account)})
    assert runner.post(path, other).status_code == 403
    forged = f"/hooks/amocrm/{integration.integration_id}/not-the-secret/dp"
    assert runner.post(forged, sample_body("amo_hook", TRIGGER)).status_code == 403
    assert runner.post(path, b"event[type]=15").status_code == 400
    assert runner.queue_depth("InboxQueue") == depth


def salesbot_body(runner: LocalRunner, integration: Integration, lead_id: int, **changes: Any) -> bytes:
    sample = json.loads(load_event("amo_hook", "salesbot_widget_request.json")["body"])
    assert integration.client_secret is not None
    return runner.amocrm.salesbot_request(
        integration.account_name,
        changes.pop("secret", integration.client_secret),
        lead_id,
        {**sample["data"], "lead_id": str(lead_id), **changes.pop("data", {})},
        **changes,
    )


def test_a_forged_altered_or_expired_salesbot_request_changes_nothing(runner: LocalRunner) -> None:
    integration, secret, _ = new_amo_integration(runner, session_field=None)
    sessions = DynamoBotSessions(runner.stack.ref("LeadLedgerTable"), 90)
    lead_id = 8_301
    depth = runner.queue_depth("InboxQueue")
    forged = salesbot_body(runner, integration, lead_id, secret="not-the-client-secret")
    expired = salesbot_body(runner, integration, lead_id, issued_at=time.time() - 3_600, lifetime=600)
    valid = json.loads(salesbot_body(runner, integration, lead_id))
    header, claims, signature = valid["token"].split(".")
    altered_claims = json.loads(_unb64(claims)) | {"entity_id": 9_999}
    altered = {**valid, "token": f"{header}.{_b64(json.dumps(altered_claims))}.{signature}"}
    unsigned = {**valid, "token": f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}))}.{claims}."}
    other_key = {**valid, "token": sign_bot_token(json.loads(_unb64(claims)), "guess")}
    for body in (forged, expired, *(json.dumps(b).encode() for b in (altered, unsigned, other_key))):
        answer = post_salesbot(runner, integration, secret, body)
        assert answer.status_code == 401, answer.text
    assert (
        post_salesbot(runner, integration, "wrong-secret", salesbot_body(runner, integration, lead_id)).status_code
        == 403
    )
    bad_return = {**valid, "return_url": "https://evil.example/api/v4/salesbot/1/continue/2"}
    assert post_salesbot(runner, integration, secret, json.dumps(bad_return).encode()).status_code == 400
    assert runner.queue_depth("InboxQueue") == depth
    assert sessions.for_leads(str(_account_id(runner, integration)), [str(lead_id)]) == {}
    assert runner.amocrm.accounts[integration.account_name].bot_continues == []


def test_a_salesbot_session_attributes_the_lead_without_a_custom_field(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, session_field=None)
    talk = 8_401
    add_amo_talks(runner, integration, [talk], created_at=int(time.time()) - 30)
    body = salesbot_body(runner, integration, talk * 10)
    assert post_salesbot(runner, integration, secret, b"{}").status_code == 401  # the function is loaded (warm)
    crm_requests = runner.amocrm.counts["api_requests"]
    started = time.monotonic()
    answer = post_salesbot(runner, integration, secret, body)
    answered_in = time.monotonic() - started
    assert answer.status_code == 200
    assert runner.amocrm.counts["api_requests"] == crm_requests  # the answer never waits for the CRM
    assert answered_in < 2.0  # amoCRM waits 2 s; a warm answer takes ~50 ms here, so this holds 10x slower
    post_amo_talks(runner, integration, secret, account, [talk])
    runner.drain(timeout=60)

    [lead] = ours(runner, integration)
    assert lead["attribution"]["kind"] == "session"
    assert lead["attribution"]["session_id"] == "2814407750"  # the sample's bot_params session
    continues = runner.amocrm.accounts[integration.account_name].bot_continues
    assert [path for path, _ in continues] == ["/api/v4/salesbot/321/continue/123"]
    [note] = notes_of(runner, integration, talk * 10)
    assert "2814407750" in note
    assert "Salesbot" in note


def _account_id(runner: LocalRunner, integration: Integration) -> int:
    return runner.amocrm.accounts[integration.account_name].account_id


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _unb64(part: str) -> str:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def test_a_trigger_finds_its_chat_among_its_contacts_other_chats(runner: LocalRunner) -> None:
    """amoCRM files chat events under the contact: one contact with chats on two leads; each lead's trigger joins
    its own talk (the events found through the contact, kept by the lead they are labelled with). ``any_lead``: a
    trigger that found no chat would be a stage lead of its own, beside the talks' leads."""
    integration, secret, account = new_amo_integration(runner, session_field=None, amo_trigger_leads="any_lead")
    now = int(time.time())
    for talk, lead_id, started in ((8_501, 85_010, now - 600), (8_502, 85_020, now - 60)):
        runner.amocrm.add_talk(
            integration.account_name,
            talk,
            lead_id=lead_id,
            contact_id=85_000,
            origin="telegram",
            created_at=started,
            lead={},
            contact={"name": "Ann"},
        )
    assert post_trigger(runner, integration, secret, account, 85_020).status_code == 200
    assert post_trigger(runner, integration, secret, account, 85_010).status_code == 200
    runner.drain(timeout=60)
    post_amo_talks(runner, integration, secret, account, [8_501, 8_502])
    runner.drain(timeout=60)

    by_talk = {int(lead["source_entity"]["id"]): lead for lead in ours(runner, integration)}
    assert len(by_talk) == 2
    assert set(by_talk) == {8_501, 8_502}  # two leads, one per chat: each trigger joined its own talk
    for talk in by_talk:
        assert by_talk[talk]["lead_id"] == lead_id_for(f"amocrm:{account}:talk:{talk}")


def test_the_stage_action_send_webhook_joins_the_talk(runner: LocalRunner) -> None:
    """«API: отправить webhook» sends ``leads[status][0][...]`` with no ``event`` block, once and never again: the
    hook reads it as a trigger, and the worker joins the lead's talk as for any trigger."""
    integration, secret, account = new_amo_integration(runner, session_field=None, amo_trigger_leads="any_lead")
    talk = 8_601
    add_amo_talks(runner, integration, [talk], created_at=int(time.time()) - 60)
    fields = {
        "leads[status][0][id]": str(talk * 10),
        "account[id]": str(account),
        "account[subdomain]": integration.account_name,
    }
    path = f"/hooks/amocrm/{integration.integration_id}/{secret}/dp"
    answer = runner.post(path, sample_body("amo_hook", "stage_action_webhook.json", **fields))
    assert (answer.status_code, answer.json()) == (200, {"accepted": 1, "ignored": 0})
    runner.drain(timeout=60)
    post_amo_talks(runner, integration, secret, account, [talk])
    runner.drain(timeout=60)

    [lead] = ours(runner, integration)
    assert lead["source_entity"] == {"type": "talk", "id": str(talk)}
    assert lead["lead_id"] == lead_id_for(f"amocrm:{account}:talk:{talk}")
    assert "lead_appeared_in_status" in notes_of(runner, integration, talk * 10)[0]


def test_two_salesbot_runs_on_one_lead_are_both_continued_without_the_inbox_delay(runner: LocalRunner) -> None:
    """A second bot run on the same lead within SQS's 5-minute dedup window is its own continue; and a continue
    skips the inbox's delay (the visitor is waiting on the bot): it travels on the undelayed queue."""
    integration, secret, _ = new_amo_integration(runner, session_field=None)
    lead_id = 8_701
    inbox = runner.queue_depth("InboxQueue")
    issued = time.time()
    for run, continue_id in enumerate(("run-1", "run-2")):  # two runs: two tokens (one use per token)
        body = salesbot_body(runner, integration, lead_id, continue_id=continue_id, issued_at=issued + run)
        assert post_salesbot(runner, integration, secret, body).json()["accepted"] == 1
    assert runner.queue_depth("BotContinueQueue") == 2
    assert runner.queue_depth("InboxQueue") == inbox
    queues = runner.stack.template["Resources"]
    assert "DelaySeconds" not in queues["BotContinueQueue"]["Properties"]
    assert queues["InboxQueue"]["Properties"]["DelaySeconds"] == {"Ref": "InboxDelaySeconds"}
    runner.drain(timeout=60)
    continues = runner.amocrm.accounts[integration.account_name].bot_continues
    assert sorted(path for path, _ in continues) == [
        "/api/v4/salesbot/321/continue/run-1",
        "/api/v4/salesbot/321/continue/run-2",
    ]


def test_a_contact_token_plants_nothing_on_a_lead_and_a_replayed_token_is_refused(runner: LocalRunner) -> None:
    """The lead comes only from what amoCRM signed: a valid token for a contact with ``data.lead_id`` of someone
    else's lead stores no session anywhere. A captured request sent again is refused while its token lives."""
    integration, secret, _ = new_amo_integration(runner, session_field=None)
    account = str(_account_id(runner, integration))
    sessions = DynamoBotSessions(runner.stack.ref("LeadLedgerTable"), 90)
    contact_token = salesbot_body(
        runner, integration, 5_011, entity_type="contacts", data={"lead_id": "5012", "leadbridge_session": "9999"}
    )
    answer = post_salesbot(runner, integration, secret, contact_token)
    assert (answer.status_code, answer.json()["session"]) == (200, False)
    assert sessions.for_leads(account, ["5011", "5012"]) == {}

    request = salesbot_body(runner, integration, 5_013, continue_id="once")
    assert post_salesbot(runner, integration, secret, request).status_code == 200
    replayed = post_salesbot(runner, integration, secret, request)
    assert (replayed.status_code, replayed.json()) == (401, {"error": "bot_token_replayed"})
    runner.drain(timeout=60)
    continues = [path for path, _ in runner.amocrm.accounts[integration.account_name].bot_continues]
    assert continues.count("/api/v4/salesbot/321/continue/once") == 1


VENDOR = Path(__file__).resolve().parents[1] / "vendor" / "amocrm"


def vendor_body(name: str) -> dict[str, Any]:
    document = json.loads((VENDOR / name).read_text(encoding="utf-8"))
    assert document["url"].startswith("https://www.amocrm.ru/developers/")
    body: dict[str, Any] = document["body"]
    return body


def as_form(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict | list):
            pairs += as_form(value, name)  # type: ignore[arg-type]
        else:
            pairs.append((name, str(value)))
    return pairs


def test_the_documented_stage_action_body_without_an_account_is_taken(runner: LocalRunner) -> None:
    """The vendor's own example of «API: отправить webhook» has no account block, and it is sent once: the URL's
    secret names the integration, whose account stands in. An item without an id is skipped, not the body."""
    integration, secret, account = new_amo_integration(runner, session_field=None, amo_trigger_leads="any_lead")
    path = f"/hooks/amocrm/{integration.integration_id}/{secret}/dp"
    for talk, form in ((8_801, False), (8_802, True)):
        add_amo_talks(runner, integration, [talk], created_at=int(time.time()) - 60)
        body = vendor_body("dp-webhook-status.json")
        body["leads"]["status"][0]["id"] = talk * 10
        body["leads"]["status"].append({"status_id": 142})  # an item without a lead id
        if form:
            answer = runner.post(path, urlencode(as_form(body)).encode())
        else:
            answer = runner.post(path, json.dumps(body), content_type="application/json")
        assert (answer.status_code, answer.json()) == (200, {"accepted": 1, "ignored": 1}), answer.text
    other = vendor_body("dp-webhook-status.json") | {"account": {"id": "1", "subdomain": "somebody-else"}}
    assert runner.post(path, json.dumps(other), content_type="application/json").status_code == 403
    runner.drain(timeout=60)
    post_amo_talks(runner, integration, secret, account, [8_801, 8_802])
    runner.drain(timeout=60)
    assert sorted(lead["source_entity"]["id"] for lead in ours(runner, integration)) == ["8801", "8802"]
    for talk in (8_801, 8_802):
        assert "lead_appeared_in_status" in notes_of(runner, integration, talk * 10)[0]


def test_a_salesbot_token_with_a_numeric_entity_type_keeps_its_session(runner: LocalRunner) -> None:
    """amoCRM's own library reads ``entity_type`` as a number (2: leads); the fake signs it so, with the claims
    the library requires (``client_uuid``, ``bot_type``), which makes the token longer than 500 characters. The
    JSON form keeps it whole, as the bracket form does."""
    integration, secret, _ = new_amo_integration(runner, session_field=None)
    account = str(_account_id(runner, integration))
    sessions = DynamoBotSessions(runner.stack.ref("LeadLedgerTable"), 90)
    body = salesbot_body(runner, integration, 8_901, data={"leadbridge_session": "2814407701"})
    token = json.loads(body)["token"]
    assert json.loads(_unb64(token.split(".")[1]))["entity_type"] == 2
    assert len(token) > 500
    answer = post_salesbot(runner, integration, secret, body)
    assert (answer.status_code, answer.json()["session"]) == (200, True), answer.text
    assert set(sessions.for_leads(account, ["8901"])) == {"8901"}
    flat = urlencode(as_form(json.loads(salesbot_body(runner, integration, 8_902, issued_at=time.time() + 1))))
    form = runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/salesbot", flat.encode())
    assert form.status_code == 200, form.text


def test_a_salesbot_token_replayed_with_another_continue_url_is_refused(runner: LocalRunner) -> None:
    integration, secret, _ = new_amo_integration(runner, session_field=None)
    account = str(_account_id(runner, integration))
    sessions = DynamoBotSessions(runner.stack.ref("LeadLedgerTable"), 90)
    genuine = json.loads(salesbot_body(runner, integration, 9_001, data={"leadbridge_session": ""}))
    continues = runner.queue_depth("BotContinueQueue")
    assert post_salesbot(runner, integration, secret, json.dumps(genuine).encode()).status_code == 200
    replayed = genuine | {
        "return_url": genuine["return_url"].rsplit("/", 1)[0] + "/bbb",
        "data": {**genuine["data"], "leadbridge_session": "6666666666"},
    }
    answer = post_salesbot(runner, integration, secret, json.dumps(replayed).encode())
    assert (answer.status_code, answer.json()) == (401, {"error": "bot_token_replayed"})
    assert sessions.for_leads(account, ["9001"]) == {}
    assert runner.queue_depth("BotContinueQueue") == continues + 1  # the genuine run's continue only


def test_an_authentic_delivery_of_long_cyrillic_messages_is_taken(runner: LocalRunner) -> None:
    """Three 4,000-character Cyrillic messages in one delivery (over 64 KiB url-encoded) and a NUL in one: taken,
    never refused before authentication nor as a whole."""
    integration, secret, account = new_amo_integration(runner)
    talk = 9_101
    text = "Здравствуйте, " + "ж" * 3_986
    sample = parse_qsl(sample_body("amo_hook", "message_incoming.json").decode(), keep_blank_values=True)
    pairs: list[tuple[str, str]] = [(k, v) for k, v in sample if not k.startswith("message[")]
    for index in range(3):
        for key, value in sample:
            if not key.startswith("message[add][0]"):
                continue
            field = key.removeprefix("message[add][0]")
            replaced = {
                "[id]": f"msg-{talk}-{index}",
                "[talk_id]": str(talk),
                "[text]": text if index else text[:20] + "\x00" + text[21:],
            }.get(field, value)
            pairs.append((f"message[add][{index}]{field}", replaced))
    pairs = [(k, str(account) if k == "account[id]" else v) for k, v in pairs]
    pairs = [(k, integration.account_name if k == "account[subdomain]" else v) for k, v in pairs]
    body = urlencode(pairs).encode()
    assert len(body) > 64 * 1024
    answer = runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 3
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/not-the-secret/", body).status_code == 403


def test_a_trigger_finds_a_chat_older_than_the_contacts_newest_300_messages(runner: LocalRunner) -> None:
    """A busy contact: the lead's chat began a day ago and 350 later messages of the contact's other chat are
    newer. The trigger reads back to the lead's creation and joins the lead's own talk: one lead, not two."""
    integration, secret, account = new_amo_integration(runner, session_field=None, amo_trigger_leads="any_lead")
    now = int(time.time())
    old_talk, busy_talk = 9_201, 9_202
    for talk, lead_id, started in ((old_talk, 92_010, now - 86_400), (busy_talk, 92_020, now - 7_200)):
        runner.amocrm.add_talk(
            integration.account_name,
            talk,
            lead_id=lead_id,
            contact_id=92_000,
            origin="telegram",
            created_at=started,
            lead={},
            contact={"name": "Ann"},
        )
    for n in range(350):
        runner.amocrm.add_chat_message_event(integration.account_name, busy_talk, now - 7_000 + n)
    assert post_trigger(runner, integration, secret, account, 92_010).status_code == 200
    runner.drain(timeout=60)
    post_amo_talks(runner, integration, secret, account, [old_talk])
    runner.drain(timeout=60)
    leads = ours(runner, integration)
    assert [lead["source_entity"] for lead in leads] == [{"type": "talk", "id": str(old_talk)}]

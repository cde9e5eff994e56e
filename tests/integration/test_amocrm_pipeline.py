"""amoCRM: webhook -> inbox -> worker -> leads queue, through local AWS and the fake amoCRM over HTTP."""

from __future__ import annotations

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.ledger import DynamoLedger
from leadbridge.aws.store.tokens import DynamoTokens
from leadbridge_local.demo_setup import DEMO_AMO, install_demo_integrations
from leadbridge_local.loopback import HttpResponse
from leadbridge_local.runner import LocalRunner
from tests.conftest import load_event
from tests.integration.helpers import new_amo_integration, sample_body, talk_fields
from tests.integration.test_conversations import service

CONTACT = {
    "name": "Иван Петров",
    "custom_fields_values": [{"field_id": 3, "field_code": "PHONE", "values": [{"value": "+7 912 345-67-89"}]}],
}


def ledger(runner: LocalRunner) -> DynamoLedger:
    return DynamoLedger(runner.stack.ref("LeadLedgerTable"), 90)


def post_sample(runner: LocalRunner, name: str) -> tuple[int, str]:
    event = load_event("amo_hook", name)
    response = runner.post(event["rawPath"], sample_body("amo_hook", name))
    return response.status_code, response.text


def test_samples_from_events_give_one_lead_per_talk(runner: LocalRunner) -> None:
    install_demo_integrations(runner)
    depth = runner.queue_depth("InboxQueue")
    assert post_sample(runner, "forged_secret.json")[0] == 403
    assert post_sample(runner, "ignored_lead_event.json") == (200, '{"accepted": 0, "ignored": 1}')
    assert runner.queue_depth("InboxQueue") == depth  # rejected and ignored: nothing enqueued
    for name in ("talk_add.json", "talk_update_same_talk.json", "two_talks.json"):
        assert post_sample(runner, name)[0] == 200
    runner.drain()
    leads = {
        lead["source_entity"]["id"]: lead
        for lead in runner.take_leads()
        if lead["integration_id"] == DEMO_AMO.integration_id
    }
    assert set(leads) == {"191", "192", "193"}
    first = leads["191"]
    assert first["contact"] == {"name": "Иван Петров", "phones": ["+79123456789"], "emails": ["ivan.petrov@example.ru"]}
    assert first["attribution"]["kind"] == "session"
    assert first["attribution"]["session_id"] == "2814407731"
    assert first["attribution"]["utm"]["source"] == "yandex"
    assert first["created_at"] == "2024-09-17T13:54:58Z"
    assert leads["192"]["channel"] == {"kind": "messenger", "messenger": "whatsapp", "origin": "waba"}
    assert (leads["192"]["attribution"]["kind"], leads["192"]["attribution"]["campaign_id"]) == (
        "messenger_default",
        1002,
    )
    assert (leads["193"]["attribution"]["kind"], leads["193"]["attribution"]["campaign_id"]) == (
        "integration_default",
        1001,
    )
    assert all(lead["employee_id"] == 42 for lead in leads.values())


def test_twenty_updates_and_retries_of_one_talk_give_one_lead(runner: LocalRunner) -> None:
    integration, secret, account_id = new_amo_integration(runner)
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub,
        501,
        lead_id=7001,
        contact_id=8001,
        origin="telegram",
        created_at=1726581298,
        lead={"name": "x"},
        contact=CONTACT,
    )
    url = f"/hooks/amocrm/{integration.integration_id}/{secret}"
    add = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 501, 7001, 8001, sub, account_id))
    assert runner.post(url + "/", add).status_code == 200
    assert runner.post(url, add).status_code == 200  # a retry, and the URL without its trailing slash
    for n in range(20):
        update = sample_body(
            "amo_hook",
            "talk_update_same_talk.json",
            **talk_fields("update", 501, 7001, 8001, sub, account_id, 1726581300 + n),
        )
        assert runner.post(url + "/", update).status_code == 200
    before = runner.amocrm.counts["api_requests"]
    runner.drain()
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert len(leads) == 1
    assert leads[0]["attribution"]["campaign_id"] == 1003
    entry = ledger(runner).get(f"amocrm:{account_id}:talk:501")
    assert entry is not None
    assert (entry.state, entry.note_state) == ("emitted", "added")
    assert runner.amocrm.counts["api_requests"] - before == 3  # lead, contact, note: duplicates cost nothing
    notes = runner.amocrm.accounts[sub].notes
    assert len(notes) == 1
    assert "по мессенджеру: РК 1003" in notes[0]["params"]["text"]


def test_deleted_lead_ends_in_the_ledger_as_skipped(runner: LocalRunner) -> None:
    integration, secret, account_id = new_amo_integration(runner)
    sub = integration.account_name
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 502, 7999, 8002, sub, account_id))
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.drain()
    assert not [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    entry = ledger(runner).get(f"amocrm:{account_id}:talk:502")
    assert entry is not None
    assert entry.state == "skipped"


def test_rate_limit_answers_are_honoured(runner: LocalRunner) -> None:
    integration, secret, account_id = new_amo_integration(runner, amo_note_enabled=False)
    sub = integration.account_name
    for talk in range(510, 515):
        runner.amocrm.add_talk(
            sub,
            talk,
            lead_id=talk * 10,
            contact_id=talk * 100,
            origin="vk",
            created_at=1726581298,
            lead={},
            contact=CONTACT,
        )
        body = sample_body(
            "amo_hook", "talk_add.json", **talk_fields("add", talk, talk * 10, talk * 100, sub, account_id)
        )
        assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.amocrm.faults.kinds, runner.amocrm.faults.ratio = ("limit",), 0.4
    try:
        runner.drain()
    finally:
        runner.amocrm.faults.ratio = 0.0
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert sorted(lead["source_entity"]["id"] for lead in leads) == ["510", "511", "512", "513", "514"]
    assert runner.amocrm.counts["injected_429"] > 0


def test_expired_access_token_is_refreshed_once_and_the_call_retried(runner: LocalRunner) -> None:
    integration, secret, account_id = new_amo_integration(runner, amo_note_enabled=False)
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub, 520, lead_id=5200, contact_id=52000, origin="telegram", created_at=1726581298, lead={}, contact=CONTACT
    )
    runner.amocrm.expire_access_tokens()
    refreshes = runner.amocrm.counts["refresh_requests"]
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 520, 5200, 52000, sub, account_id))
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.drain()
    assert [
        lead["source_entity"]["id"]
        for lead in runner.take_leads()
        if lead["integration_id"] == integration.integration_id
    ] == ["520"]
    assert runner.amocrm.counts["refresh_requests"] - refreshes == 1
    stored = DynamoTokens(runner.stack.ref("IntegrationsTable")).read(integration.integration_id)
    assert stored is not None
    assert stored.version == 2


def test_blocked_account_parks_its_events_until_the_sweep_finds_it_answering(runner: LocalRunner) -> None:
    integration, secret, account_id = new_amo_integration(runner)
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub, 530, lead_id=5300, contact_id=53000, origin="telegram", created_at=1773223766, lead={}, contact={}
    )
    runner.amocrm.accounts[sub].blocked = True
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 530, 5300, 53000, sub, account_id))
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.drain(timeout=120)
    statuses = DynamoIntegrations(runner.stack.ref("IntegrationsTable"))
    assert statuses.status(integration.integration_id)["connection_state"] == "blocked"
    assert [m for m in runner.take_messages("InboxDeadLetterQueue") if integration.integration_id in m["Body"]] == []
    entry = ledger(runner).get(f"amocrm:{account_id}:talk:530")
    assert entry is not None
    assert entry.state == "parked"
    assert entry.last_error is not None
    assert entry.last_error.startswith("account_blocked")

    runner.run_schedule("recovery")  # still blocked: stays parked
    assert statuses.status(integration.integration_id)["connection_state"] == "blocked"
    runner.amocrm.accounts[sub].blocked = False
    runner.run_schedule("recovery")  # the probe finds the API answering: resumed
    assert statuses.status(integration.integration_id)["connection_state"] == "connected"
    runner.drain(timeout=120)
    emitted = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert [lead["source_entity"]["id"] for lead in emitted] == ["530"]


def test_dead_grant_moves_the_integration_to_reauth_required(runner: LocalRunner) -> None:
    integration, secret, account_id = new_amo_integration(runner)
    table = runner.stack.ref("IntegrationsTable")
    stored = DynamoTokens(table).read(integration.integration_id)
    assert stored is not None
    assert stored.tokens.refresh_token is not None
    runner.amocrm.refresh_tokens[stored.tokens.refresh_token] = (
        runner.amocrm.refresh_tokens[stored.tokens.refresh_token][0],
        True,
    )
    runner.amocrm.expire_access_tokens()
    body = sample_body(
        "amo_hook", "talk_add.json", **talk_fields("add", 540, 5400, 54000, integration.account_name, account_id)
    )
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.drain(timeout=30)  # parked: it waits for re-authorization out of the inbox
    after = DynamoTokens(table).read(integration.integration_id)
    assert after is not None
    assert after.state == "reauth_required"
    assert DynamoIntegrations(table).status(integration.integration_id)["connection_state"] == "reauth_required"


def test_missing_rights_show_in_the_status_and_park_nothing_in_a_loop(runner: LocalRunner) -> None:
    """amoCRM answers 403 «Недостаточно прав» to a user without rights: not a block. The status says what was
    refused, the events wait parked, the sweep's probe (the account answers) does not resume them, and an admin's
    resume after granting the rights lets them through."""
    integration, secret, account_id = new_amo_integration(runner)
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub, 540, lead_id=5400, contact_id=54000, origin="telegram", created_at=1773223766, lead={}, contact={}
    )
    runner.amocrm.accounts[sub].denied_paths = {"/api/v4/leads"}
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 540, 5400, 54000, sub, account_id))
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.drain(timeout=120)
    status = service(runner).status(integration.integration_id)
    assert status.connection == "insufficient_rights"
    assert status.last_error is not None
    assert "GET /api/v4/leads" in status.last_error
    assert status.parked == 1
    entry = ledger(runner).get(f"amocrm:{account_id}:talk:540")
    assert entry is not None
    assert (entry.state, entry.last_error) == ("parked", "insufficient_rights: GET /api/v4/leads")

    for _ in range(2):  # the account answers the probe, but nobody granted the rights: nothing moves
        runner.run_schedule("recovery")
        runner.drain(timeout=60)
    assert service(runner).status(integration.integration_id).connection == "insufficient_rights"
    assert service(runner).status(integration.integration_id).parked == 1
    ours = integration.integration_id
    assert [lead for lead in runner.take_leads() if lead["integration_id"] == ours] == []

    runner.amocrm.accounts[sub].denied_paths = set()
    assert service(runner).resume(integration.integration_id).resumed == 1
    runner.drain(timeout=120)
    assert [lead["source_entity"]["id"] for lead in runner.take_leads() if lead["integration_id"] == ours] == ["540"]
    assert service(runner).status(integration.integration_id).connection == "connected"


def test_an_unreadable_403_is_missing_rights_when_the_account_answers(runner: LocalRunner) -> None:
    """A lead read refused with a body that names nothing (``{"detail": "Forbidden"}``) while the account itself
    answers: missing rights, named in the status, and no blocked <-> connected loop through the sweep's probe."""
    integration, secret, account_id = new_amo_integration(runner)
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub, 550, lead_id=5500, contact_id=55000, origin="telegram", created_at=1773223766, lead={}, contact={}
    )
    refusal = HttpResponse(403, b'{"detail": "Forbidden"}', {"Content-Type": "application/json"})
    runner.amocrm.accounts[sub].canned_answers = {"/api/v4/leads": refusal}
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 550, 5500, 55000, sub, account_id))
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.drain(timeout=120)
    status = service(runner).status(integration.integration_id)
    assert status.connection == "insufficient_rights"
    assert status.last_error is not None
    assert "GET /api/v4/leads" in status.last_error
    refused = runner.amocrm.counts["canned_answers"]
    for _ in range(2):
        runner.run_schedule("recovery")
        runner.drain(timeout=60)
    assert service(runner).status(integration.integration_id).connection == "insufficient_rights"
    assert runner.amocrm.counts["canned_answers"] == refused  # nothing re-read the lead in a loop


def test_a_lone_surrogate_in_a_crm_answer_is_cleaned_where_it_is_read(runner: LocalRunner) -> None:
    integration, secret, account_id = new_amo_integration(runner)
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub,
        560,
        lead_id=5600,
        contact_id=56000,
        origin="telegram",
        created_at=1773223766,
        lead={},
        contact={"name": "Ann \ud83d"},
    )
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 560, 5600, 56000, sub, account_id))
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.drain(timeout=60)
    ours = integration.integration_id
    [lead] = [lead for lead in runner.take_leads() if lead["integration_id"] == ours]
    assert lead["contact"]["name"] == "Ann \ufffd"
    assert [m for m in runner.take_messages("InboxDeadLetterQueue") if ours in m["Body"]] == []

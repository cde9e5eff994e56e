"""Broken or hostile input ends with a reason, never a stall; secrets go only where they belong.

Every case ends as specified: a 4xx at the edge, or in the worker a ledger reason, a DLQ message with its reason and
a log line, while the next event of the same integration is emitted without waiting for the receive limit.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from leadbridge.aws.store.ledger import DynamoLedger
from leadbridge.flows.hooks.intake import MAX_EVENTS_PER_WEBHOOK
from leadbridge_local.loopback import HttpResponse
from leadbridge_local.runner import LocalRunner
from leadbridge_local.seed import connect_through_oauth
from tests.integration.helpers import (
    add_amo_talks,
    bitrix_fields,
    dead_jobs,
    integration_status,
    last_sweep,
    new_amo_integration,
    new_bitrix_integration,
    sample_body,
    talk_fields,
)
from tests.integration.test_conversations import service

HTML_PAGE = b"<html><body><h1>Service temporarily unavailable</h1></body></html>"


def ledger(runner: LocalRunner) -> DynamoLedger:
    return DynamoLedger(runner.stack.ref("LeadLedgerTable"), 90)


def dead_letters(runner: LocalRunner, integration_id: str) -> list[dict[str, Any]]:
    return [m for m in runner.take_messages("InboxDeadLetterQueue") if integration_id in m["Body"]]


def leads_of(runner: LocalRunner, integration_id: str) -> dict[str, dict[str, Any]]:
    return {
        lead["source_entity"]["id"]: lead for lead in runner.take_leads() if lead["integration_id"] == integration_id
    }


def add_amo_talk(runner: LocalRunner, sub: str, talk: int, **lead: Any) -> None:
    runner.amocrm.add_talk(
        sub,
        talk,
        lead_id=talk * 10,
        contact_id=talk * 100,
        origin="telegram",
        created_at=1773223766,
        lead=lead,
        contact={
            "name": "Ann",
            "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": "+79161234567"}]}],
        },
    )


def post_talk(
    runner: LocalRunner, integration_id: str, secret: str, sub: str, account: int, talk: int, created_at: str = ""
) -> None:
    fields = talk_fields("add", talk, talk * 10, talk * 100, sub, account)
    if created_at:
        fields["talk[add][0][created_at]"] = created_at
    body = sample_body("amo_hook", "talk_add.json", **fields)
    assert runner.post(f"/hooks/amocrm/{integration_id}/{secret}/", body).status_code == 200


# ---------------------------------------------------------------- the edge


def test_a_webhook_with_more_events_than_we_take_keeps_the_first_and_counts_the_rest(runner: LocalRunner) -> None:
    """Never a 4xx once the secret and the account match: amoCRM would retry it and turn the hook off."""
    integration, secret, account = new_amo_integration(runner)
    fields = {"account[subdomain]": integration.account_name, "account[id]": str(account)}
    for i in range(MAX_EVENTS_PER_WEBHOOK + 30):
        fields |= {f"talk[add][{i}][talk_id]": str(900 + i), f"talk[add][{i}][entity_id]": str(9000 + i)}
    depth = runner.queue_depth("InboxQueue")
    response = runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", urlencode(fields))
    assert response.status_code == 200
    assert response.json() == {"accepted": MAX_EVENTS_PER_WEBHOOK, "ignored": 0, "dropped": 30}
    assert runner.queue_depth("InboxQueue") == depth + MAX_EVENTS_PER_WEBHOOK
    assert service(runner).status(integration.integration_id).dropped == {"too_many_events": 30}
    runner.drain(timeout=120)
    runner.take_leads()


def test_unusable_items_are_answered_2xx_kept_apart_and_counted(runner: LocalRunner) -> None:
    """amoCRM's documented ``message[add]`` example has no ``talk_id``: the talk beside it still becomes a lead."""
    integration, secret, account = new_amo_integration(runner)
    add_amo_talks(runner, integration, [951])
    fields = talk_fields("add", 951, 9510, 95100, integration.account_name, account)
    body = sample_body("amo_hook", "talk_add.json", **fields).decode()
    body += "&message[add][0][id]=m-1&message[add][0][chat_id]=c-1&message[add][0][text]=hi"  # no talk_id
    body += "&message[add][1][talk_id]=951&message[add][1][id]=m-2"  # no text, no attachment
    body += "&talk[update][0][contact_id]=5"  # a talk without its id
    response = runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body)
    assert (response.status_code, response.json()) == (200, {"accepted": 1, "ignored": 0, "dropped": 3})
    assert service(runner).status(integration.integration_id).dropped == {
        "message_without_talk": 1,
        "unusable_message": 1,
        "malformed_talk": 1,
    }
    runner.drain(timeout=60)
    assert [
        lead["source_entity"]["id"]
        for lead in runner.take_leads()
        if lead["integration_id"] == integration.integration_id
    ] == ["951"]


def test_an_oversized_body_is_refused_before_authentication(runner: LocalRunner) -> None:
    reads_before = runner.aws_calls.calls.get("AmoHookFunction", set()).copy()
    response = runner.post("/hooks/amocrm/nobody/nothing/", b"a=" + b"x" * (1024 * 1024))
    assert response.status_code == 413
    assert runner.aws_calls.calls.get("AmoHookFunction", set()) == reads_before  # not even a settings read


def test_bitrix24_member_id_that_is_not_ascii_is_refused_not_a_crash(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    fields = bitrix_fields(integration, member, token, 1) | {"auth[member_id]": "член-портала"}
    body = sample_body("bitrix_hook", "lead_telegram_without_session.json", **fields)
    assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 403


def test_validation_errors_never_echo_write_only_secrets(runner: LocalRunner) -> None:
    from fastapi.testclient import TestClient

    from leadbridge.aws.config import ApiConfig
    from leadbridge.composition import integrations_service
    from leadbridge.flows.api.app import create_app

    config = ApiConfig(
        runner.stack.ref("IntegrationsTable"),
        runner.stack.ref("StateSigningSecret"),
        runner.stack.ref("InboxQueue"),
        runner.base_url,
    )
    client = TestClient(create_app(lambda: integrations_service(config)))
    secret_value = "very-secret-client-secret-value"
    token_value = "very-secret-application-token"
    for body in (
        {"crm": "bitrix24", "crm_domain": "127.0.0.1", "client_id": "x", "client_secret": secret_value},
        {"crm": "bitrix24", "crm_domain": "a.bitrix24.ru", "client_id": "x", "application_token": token_value * 20},
        {"crm": "amocrm", "crm_domain": "a.amocrm.ru", "client_id": "x", "client_secret": 5},
        {"crm": "amocrm", "crm_domain": "a.amocrm.ru", "client_id": "x", "client_secret": "", "extra": secret_value},
    ):
        response = client.put("/integrations/hostile-1", json=body)
        assert response.status_code == 422
        assert secret_value not in response.text
        assert token_value not in response.text
        assert response.json()["detail"][0]["loc"]


@pytest.mark.parametrize(
    "domain",
    [
        "127.0.0.1",
        "169.254.169.254",
        "localhost",
        "portal.localhost",
        "metadata.google.internal",
        "intranet",
        "a.local",
    ],
)
def test_a_bitrix24_portal_must_be_a_public_dns_name(runner: LocalRunner, domain: str) -> None:
    from pydantic import ValidationError

    from leadbridge.flows.api.settings import Bitrix24Settings

    with pytest.raises(ValidationError):
        Bitrix24Settings(crm="bitrix24", crm_domain=domain, client_id="x")


# ---------------------------------------------------------------- OAuth and tokens


@pytest.mark.parametrize(
    "answer",
    [
        HttpResponse(200, HTML_PAGE, {"Content-Type": "text/html"}),
        HttpResponse(200, json.dumps({"access_token": "a", "refresh_token": "r", "expires_in": "abc"}).encode()),
        HttpResponse(200, b"[1, 2, 3]", {"Content-Type": "application/json"}),
    ],
)
def test_a_malformed_token_answer_gives_the_callback_its_error_page(runner: LocalRunner, answer: HttpResponse) -> None:
    integration, _, account = new_amo_integration(runner)
    runner.amocrm.token_answer = answer
    try:
        status = connect_through_oauth(runner, integration, str(account))
    finally:
        runner.amocrm.token_answer = None
    assert status == 502


def test_bitrix24_token_servers_are_an_exact_list(runner: LocalRunner) -> None:
    from leadbridge.crms.bitrix24.oauth import token_server

    assert token_server("oauth.bitrix.info") == "oauth.bitrix.info"
    assert token_server("oauth.bitrix24.tech") == "oauth.bitrix24.tech"
    for hostile in ("oauth.bitrix.evil", "oauth.bitrix24.xyz", "169.254.169.254", "evil.com"):
        assert token_server(hostile) == "oauth.bitrix.info"
        assert token_server(None, f"https://{hostile}/rest/") == "oauth.bitrix.info"


def test_a_client_endpoint_off_the_portal_never_gets_the_access_token(runner: LocalRunner) -> None:
    from leadbridge.contract.integration import Integration
    from leadbridge.crms.bitrix24.client import rest_base

    portal = Integration(integration_id="x", crm="bitrix24", crm_domain="a.bitrix24.ru")
    assert rest_base(portal, "https://a.bitrix24.ru/rest/") == "https://a.bitrix24.ru/rest/"
    for hostile in ("http://169.254.169.254/latest/", "http://a.bitrix24.ru/rest/", "https://evil.com/rest/", "x"):
        assert rest_base(portal, hostile) == "https://a.bitrix24.ru/rest/"


def test_the_disabled_hook_cannot_be_replayed_against_a_live_grant(runner: LocalRunner) -> None:
    from leadbridge.aws.store.integrations import DynamoIntegrations
    from leadbridge.flows.connect.disabled_hook import expected_signature

    integration, _, account = new_amo_integration(runner)
    assert integration.client_id is not None
    assert integration.client_secret is not None
    params = {
        "account_id": str(account),
        "client_uuid": integration.client_id,
        "signature": expected_signature(integration.client_id, str(account), integration.client_secret),
    }
    path = f"/oauth2/amocrm/disabled/{integration.integration_id}"
    replay = runner.get(path, params)  # amoCRM never revoked this grant: a captured hook replayed
    assert replay.status_code == 409
    statuses = DynamoIntegrations(runner.stack.ref("IntegrationsTable"))
    assert statuses.status(integration.integration_id)["connection_state"] == "connected"
    runner.amocrm.revoke_grants(integration.account_name)  # the admin really disables the integration
    assert runner.get(path, params).status_code == 200
    assert statuses.status(integration.integration_id)["connection_state"] == "disconnected"


# ---------------------------------------------------------------- CRM answers that are wrong in every way


def test_amocrm_answers_that_are_wrong_end_with_a_reason_and_hold_nobody_up(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    sub = integration.account_name
    add_amo_talk(runner, sub, 1001)  # an HTML page with status 200 for its lead
    html = HttpResponse(200, HTML_PAGE, {"Content-Type": "text/html"})
    runner.amocrm.raw_answers[(sub, "/api/v4/leads/10010")] = html
    runner.amocrm.raw_answers[(sub, "/api/v4/leads")] = html  # the batch read too: each lead is then read alone
    add_amo_talk(runner, sub, 1002, custom_fields_values=5, created_at="²")
    add_amo_talk(runner, sub, 1003, created_at=10**15)
    runner.amocrm.accounts[sub].leads[10030]["_embedded"] = "contacts"
    add_amo_talk(runner, sub, 1004, name="x" * 100_000)
    runner.amocrm.accounts[sub].talks[1003]["created_at"] = 10**15
    runner.amocrm.accounts[sub].talks[1004]["created_at"] = -5
    runner.amocrm.accounts[sub].contacts[10030] = {"id": 10030, "custom_fields_values": {"PHONE": 5}, "name": 7}
    add_amo_talk(runner, sub, 1005)  # a healthy one, after all of them
    retried = runner.retried_records
    broken_times = {1002: "²", 1003: str(10**15)}
    for talk in range(1001, 1006):
        post_talk(runner, integration.integration_id, secret, sub, account, talk, broken_times.get(talk, ""))
    runner.drain(timeout=120)

    assert runner.retried_records == retried  # nothing waited for a retry, let alone the receive limit
    leads = leads_of(runner, integration.integration_id)
    assert set(leads) == {"1002", "1003", "1004", "1005"}
    assert leads["1002"]["created_at"] == leads["1002"]["received_at"]  # "²" is no time: the receive time stands
    assert leads["1003"]["created_at"].startswith("20")  # 10^15 seconds is no time either
    dead = dead_letters(runner, integration.integration_id)
    assert [m["MessageAttributes"]["reason"]["StringValue"].split(":")[0] for m in dead] == ["bad_response"]
    entry = ledger(runner).get(f"amocrm:{account}:talk:1001")
    assert entry is not None
    assert (entry.state, (entry.last_error or "").split(":")[0]) == ("failed", "bad_response")
    for talk in range(1001, 1006):
        entry = ledger(runner).get(f"amocrm:{account}:talk:{talk}")
        assert entry is not None
        assert entry.state != "in_progress"


def test_bitrix24_answers_that_are_wrong_end_with_a_reason_and_hold_nobody_up(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    portal = runner.bitrix24.portals[integration.crm_domain]
    for lead_id in range(71_001, 71_006):
        runner.bitrix24.add_open_lines_lead(integration.crm_domain, lead_id)
    portal.leads[71_001] |= {"PHONE": 5, "IM": 5, "DATE_CREATE": "0001-01-01T00:00:00+03:00"}
    portal.leads[71_002] |= {"EMAIL": [{"VALUE": 5}, "x"], "DATE_CREATE": "9999-12-31T23:59:59+03:00", "NAME": {}}
    huge = {
        str(i): {"id": str(i), "senderid": "88", "date": "2026-03-11T12:20:01+03:00", "text": "я" * 3000}
        for i in range(1, 600)
    }
    portal.histories[10_000 + 71_003] = {"message": huge, "users": {"88": {"id": "88", "connector": True}}}
    portal.histories[10_000 + 71_004] = {"message": 5, "users": []}
    retried = runner.retried_records
    for lead_id in range(71_001, 71_006):
        body = sample_body(
            "bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(integration, member, token, lead_id)
        )
        assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 200
    runner.drain(timeout=120)
    assert runner.retried_records == retried
    leads = leads_of(runner, integration.integration_id)
    assert set(leads) == {str(i) for i in range(71_001, 71_006)}
    assert leads["71001"]["created_at"] == leads["71001"]["received_at"]
    assert leads["71002"]["created_at"] == leads["71002"]["received_at"]
    transcript = leads["71003"]["chat"]["messages"]
    assert len(json.dumps(leads["71003"], ensure_ascii=False).encode()) < 256 * 1024  # fits any SQS consumer
    assert transcript[0]["text"].startswith("я")
    assert "not included" in transcript[-1]["text"]
    assert dead_letters(runner, integration.integration_id) == []


def test_an_unexpected_error_fails_the_event_at_once_with_its_type(runner: LocalRunner) -> None:
    """Whatever the enricher did not foresee: ledger failed with the type, DLQ with the reason, next event fine."""
    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    sub = integration.account_name
    add_amo_talk(runner, sub, 1101)
    add_amo_talk(runner, sub, 1102)
    worker = runner.module("LeadWorkerFunction").batch.worker
    real = worker.enrichers["amocrm"]

    class Exploding:
        def prepare(self, batch: Any) -> None:
            real.prepare(batch)

        def ledger_keys_ahead(self, messages: Any) -> list[str]:
            return real.ledger_keys_ahead(messages)

        def other_keys(self, message: Any) -> tuple[str, ...]:
            return real.other_keys(message)

        def build(self, message: Any, integration: Any, entry: Any) -> Any:
            if message.entity_id == "1101":
                raise KeyError("a value that must not reach the logs: +79161234567")
            return real.build(message, integration, entry)

    worker.enrichers["amocrm"] = Exploding()
    try:
        for talk in (1101, 1102):
            post_talk(runner, integration.integration_id, secret, sub, account, talk)
        runner.drain(timeout=60, environments=0)  # the patched worker lives in this process
    finally:
        worker.enrichers["amocrm"] = real
    assert set(leads_of(runner, integration.integration_id)) == {"1102"}
    dead = dead_letters(runner, integration.integration_id)
    assert [m["MessageAttributes"]["reason"]["StringValue"] for m in dead] == ["unexpected: KeyError"]
    entry = ledger(runner).get(f"amocrm:{account}:talk:1101")
    assert entry is not None
    assert (entry.state, entry.last_error) == ("failed", "unexpected: KeyError")


def test_one_broken_portal_does_not_stop_the_sweep_for_the_others(runner: LocalRunner) -> None:
    broken, _, _, _ = new_bitrix_integration(runner)
    healthy, _, _, _ = new_bitrix_integration(runner)
    runner.bitrix24.add_open_lines_lead(broken.crm_domain, 72_001, created="2099-01-01T00:00:00+03:00")
    runner.bitrix24.add_open_lines_lead(healthy.crm_domain, 72_002, created="2099-01-01T00:00:00+03:00")
    assert runner.stack.moto is not None
    runner.stack.moto.fail_sends_to("inbox.fifo", ratio=1.0, containing=broken.integration_id)
    try:
        runner.run_schedule("recovery")
    finally:
        runner.stack.moto.fail_sends_to("inbox.fifo", ratio=0)
    assert last_sweep(runner, healthy.integration_id)["enqueued"] >= 1
    failure = integration_status(runner, broken.integration_id)["last_job_failure"]
    assert failure["kind"] == "sweep"
    assert failure["reason"].startswith("InboxWriteError")
    dead = dead_jobs(runner, broken.integration_id)  # its 3rd failure: in the jobs DLQ, with its reason
    assert [m["MessageAttributes"]["reason"]["StringValue"].split(":")[0] for m in dead] == ["failed 3 times"]
    runner.drain(timeout=60)
    assert "72002" in leads_of(runner, healthy.integration_id)

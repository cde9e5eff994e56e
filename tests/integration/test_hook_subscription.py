"""The integration subscribes its own amoCRM webhook at connect (``/api/v4/webhooks`` as documented, the fake
answering as tests/vendor/amocrm/webhooks-*.json), the twice-daily check restores one deleted in the CRM, and a grant
without admin rights shows as a failed checklist step, over the local stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge_local.fakes.amocrm import WEBHOOK_EVENTS
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import sample_body, talk_fields
from tests.integration.test_oauth_connect import amo_params, fresh

VENDOR = Path(__file__).resolve().parents[1] / "vendor" / "amocrm"


def vendor(name: str) -> Any:
    return json.loads((VENDOR / name).read_text(encoding="utf-8"))["body"]


def steps(runner: LocalRunner, integration_id: str) -> dict[str, tuple[str, str | None]]:
    found = runner.get(f"/integrations/{integration_id}/status").json()["setup"]
    return {s["step"]: (s["state"], s["reason"]) for s in found}


def test_the_fake_knows_the_documented_events_and_answers_as_documented() -> None:
    assert set(vendor("webhooks-events.json")) == WEBHOOK_EVENTS
    listed = vendor("webhooks-list.json")["_embedded"]["webhooks"][0]
    assert set(vendor("webhooks-subscribe-answer.json")) <= set(listed) | {"account_id"}
    assert set(vendor("webhooks-subscribe-request.json")) >= {"destination", "settings"}


def test_connect_subscribes_the_hook_and_a_deleted_one_is_restored(runner: LocalRunner) -> None:
    integration = fresh(runner, "amocrm")
    assert runner.get("/oauth2/callback", amo_params(runner, integration)).status_code == 200
    account = runner.amocrm.accounts[integration.account_name]
    [hook] = account.webhooks
    prefix = f"{runner.base_url}/hooks/amocrm/{integration.integration_id}/"
    assert hook["destination"].startswith(prefix)
    assert set(hook["settings"]) == {"add_talk", "update_talk"}
    assert steps(runner, integration.integration_id)["hook_subscribed"][0] == "ok"

    # amoCRM delivers to the subscribed URL: taken.
    path = hook["destination"].removeprefix(runner.base_url)
    talk = 5_301
    runner.amocrm.add_talk(
        integration.account_name, talk, lead_id=53_010, contact_id=530_100, origin="telegram",
        created_at=1773223766, lead={}, contact={"name": "Ann"},
    )  # fmt: skip
    body = sample_body(
        "amo_hook",
        "talk_add.json",
        **talk_fields("add", talk, 53_010, 530_100, integration.account_name, account.account_id),
    )
    assert runner.post(path, body).status_code == 200
    runner.drain(timeout=60)
    assert [
        lead["source_entity"]["id"]
        for lead in runner.take_leads()
        if lead["integration_id"] == integration.integration_id
    ] == [str(talk)]

    # Someone deletes it in amoCRM; the twice-daily check (due: its last check backdated) restores it.
    account.webhooks.clear()
    table = DynamoIntegrations(runner.stack.ref("IntegrationsTable"))
    last_check = {"state": "present", "at": 1, "detail": ""}  # the last check was long ago: one is due
    table._update_status("SET hook_subscription = :h", {":h": last_check}, integration.integration_id)
    runner.run_schedule("recovery")
    [restored] = account.webhooks
    assert restored["destination"].startswith(prefix)
    assert restored["destination"] != hook["destination"]  # a new secret: the old one only has its grace
    assert table.status(integration.integration_id)["hook_subscription"]["state"] == "restored"
    assert runner.post(restored["destination"].removeprefix(runner.base_url), body).status_code == 200
    assert runner.post(path, body).status_code == 200  # the replaced URL, within its grace
    runner.drain(timeout=60)
    runner.take_leads()


def test_a_grant_without_admin_rights_is_a_failed_subscription_step(runner: LocalRunner) -> None:
    integration = fresh(runner, "amocrm")
    runner.amocrm.accounts[integration.account_name].denied_paths = {"/api/v4/webhooks"}
    assert runner.get("/oauth2/callback", amo_params(runner, integration)).status_code == 200  # connected all the same
    state, reason = steps(runner, integration.integration_id)["hook_subscribed"]
    assert state == "failed"
    assert reason is not None
    assert "admin" in reason
    assert runner.amocrm.accounts[integration.account_name].webhooks == []


def test_a_bitrix24_connect_binds_the_events_and_the_first_delivery_brings_the_token(runner: LocalRunner) -> None:
    """event.bind for ONCRMLEADADD and ONCRMDEALADD at connect; the application's deliveries carry its
    ``application_token``, which nobody pasted: the first one to the bound URL is kept, a different one is refused.
    Handlers unbound in the portal are bound again by the twice-daily check."""
    from tests.integration.test_oauth_connect import bitrix_params

    integration = fresh(runner, "bitrix24")
    assert runner.get("/oauth2/callback", bitrix_params(runner, integration)).status_code == 200
    portal = runner.bitrix24.portals[integration.crm_domain]
    prefix = f"{runner.base_url}/hooks/bitrix24/{integration.integration_id}/"
    assert {b["event"] for b in portal.bindings} == {"ONCRMLEADADD", "ONCRMDEALADD"}
    [handler] = {b["handler"] for b in portal.bindings}
    assert handler.startswith(prefix)
    assert steps(runner, integration.integration_id)["hook_subscribed"] == ("ok", None)

    runner.bitrix24.add_open_lines_lead(integration.crm_domain, 5_401)
    fields = {
        "data[FIELDS][ID]": "5401",
        "auth[domain]": integration.crm_domain,
        "auth[member_id]": portal.member_id,
        "auth[application_token]": "app-token-from-the-install",
    }
    body = sample_body("bitrix_hook", "lead_telegram_without_session.json", **fields)
    path = handler.removeprefix(runner.base_url)
    assert runner.post(path, body).status_code == 200  # the first application delivery: its token is kept
    forged = sample_body(
        "bitrix_hook", "lead_telegram_without_session.json", **fields | {"auth[application_token]": "x"}
    )
    assert runner.post(path, forged).status_code == 403
    runner.drain(timeout=60)
    assert [
        lead["source_entity"]["id"]
        for lead in runner.take_leads()
        if lead["integration_id"] == integration.integration_id
    ] == ["5401"]

    portal.bindings.clear()
    table = DynamoIntegrations(runner.stack.ref("IntegrationsTable"))
    last_check = {"state": "present", "at": 1, "detail": ""}
    table._update_status("SET hook_subscription = :h", {":h": last_check}, integration.integration_id)
    runner.run_schedule("recovery")
    assert {b["event"] for b in portal.bindings} == {"ONCRMLEADADD", "ONCRMDEALADD"}
    assert table.status(integration.integration_id)["hook_subscription"]["state"] == "restored"


def test_deactivating_removes_the_integrations_own_hooks_then_its_tokens(runner: LocalRunner) -> None:
    import httpx

    from leadbridge.aws.store.tokens import DynamoTokens
    from tests.integration.test_oauth_connect import bitrix_params

    amo, b24 = fresh(runner, "amocrm"), fresh(runner, "bitrix24")
    assert runner.get("/oauth2/callback", amo_params(runner, amo)).status_code == 200
    assert runner.get("/oauth2/callback", bitrix_params(runner, b24)).status_code == 200
    account = runner.amocrm.accounts[amo.account_name]
    portal = runner.bitrix24.portals[b24.crm_domain]
    someone_elses = {"destination": "https://other.example/hook", "settings": ["add_lead"], "id": 1, "disabled": False}
    account.webhooks.append(someone_elses)
    assert len(account.webhooks) == 2
    assert len(portal.bindings) == 2
    for integration in (amo, b24):
        assert (
            httpx.delete(f"{runner.base_url}/integrations/{integration.integration_id}", timeout=30).status_code == 204
        )
    runner.drain(timeout=60)
    assert account.webhooks == [someone_elses]  # ours gone, the account's other hooks left alone
    assert portal.bindings == []
    tokens = DynamoTokens(runner.stack.ref("IntegrationsTable"))
    assert tokens.read(amo.integration_id) is None
    assert tokens.read(b24.integration_id) is None

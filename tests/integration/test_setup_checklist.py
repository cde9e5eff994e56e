"""The set-up checklist in the status: every common mistake shows as a failed or missing step with what to do, over
the local stack (hooks posted over HTTP, the OAuth callback, the worker draining)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import httpx

from leadbridge.contract.integration import TrafficTarget
from leadbridge_local.runner import LocalRunner
from leadbridge_local.seed import install_integration
from tests.integration.helpers import (
    bitrix_fields,
    new_amo_integration,
    new_bitrix_integration,
    sample_body,
    talk_fields,
)
from tests.integration.test_oauth_connect import bitrix_params, fresh


def status(runner: LocalRunner, integration_id: str) -> dict[str, Any]:
    answer = runner.get(f"/integrations/{integration_id}/status")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def steps(runner: LocalRunner, integration_id: str) -> dict[str, tuple[str, str | None]]:
    return {s["step"]: (s["state"], s["reason"]) for s in status(runner, integration_id)["setup"]}


def test_a_bitrix24_hook_on_the_wrong_event_and_a_stale_token_say_so(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    url = f"/hooks/bitrix24/{integration.integration_id}/{secret}"
    fields = bitrix_fields(integration, member, token, 5_001)
    invoice = sample_body("bitrix_hook", "lead_telegram_without_session.json", **fields | {"event": "ONCRMINVOICEADD"})
    assert runner.post(url, invoice).status_code == 200
    state, reason = steps(runner, integration.integration_id)["events"]
    assert state == "failed"
    assert reason is not None
    assert "ONCRMINVOICEADD" in reason
    assert "ONCRMLEADADD" in reason
    assert status(runner, integration.integration_id)["ignored"] == {"ONCRMINVOICEADD": 1}

    wrong_token = sample_body(
        "bitrix_hook", "lead_telegram_without_session.json", **fields | {"auth[application_token]": "old"}
    )
    assert runner.post(url, wrong_token).status_code == 403
    found = status(runner, integration.integration_id)
    assert found["last_refusal"]["reason"] == "bad_application_token"
    assert found["refused"] == {"bad_application_token": 1}
    state, reason = steps(runner, integration.integration_id)["webhook"]
    assert state == "failed"
    assert reason is not None
    assert "application token" in reason
    assert "old" not in reason  # never the input

    runner.bitrix24.add_open_lines_lead(integration.crm_domain, 5_001)
    assert (
        runner.post(url, sample_body("bitrix_hook", "lead_telegram_without_session.json", **fields)).status_code == 200
    )
    runner.drain(timeout=60)
    runner.take_leads()
    now = steps(runner, integration.integration_id)
    assert now["webhook"][0] == "ok"
    assert now["events"][0] == "ok"
    assert now["first_lead"][0] == "ok"
    assert now["oauth_connected"][0] == "ok"


def test_an_old_amocrm_url_is_a_failed_webhook_step(runner: LocalRunner) -> None:
    integration, _, account = new_amo_integration(runner)
    body = sample_body(
        "amo_hook", "talk_add.json", **talk_fields("add", 5_101, 51_010, 510_100, integration.account_name, account)
    )
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/not-the-secret/", body).status_code == 403
    state, reason = steps(runner, integration.integration_id)["webhook"]
    assert state == "failed"
    assert reason is not None
    assert "webhook-secret" in reason
    assert status(runner, integration.integration_id)["refused"] == {"bad_secret": 1}


def test_a_new_integration_lists_what_is_missing(runner: LocalRunner) -> None:
    integration = fresh(runner, "amocrm")
    bare = replace(integration, integration_id=integration.integration_id + "-bare", client_secret=None)
    install_integration(runner, bare)
    found = steps(runner, bare.integration_id)
    assert found["oauth_client"][0] == "missing"
    assert found["oauth_connected"][0] == "missing"
    assert found["default_target"][0] == "missing"
    assert found["session_field"][0] == "missing"
    assert found["webhook"][0] == "missing"
    assert found["first_lead"][0] == "missing"
    for path in (f"/integrations/{bare.integration_id}/resume", f"/integrations/{bare.integration_id}/backfill"):
        body = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}
        answer = httpx.post(runner.base_url + path, json=body, timeout=30)
        assert answer.status_code == 409, answer.text
        assert "connect" in answer.json()["detail"]
    chosen = replace(
        integration, integration_id=integration.integration_id + "-chosen", default_target=TrafficTarget(campaign_id=7)
    )
    install_integration(runner, chosen)
    assert steps(runner, chosen.integration_id)["default_target"][0] == "ok"


def test_a_bitrix24_app_without_the_imopenlines_scope_is_a_failed_rights_step(runner: LocalRunner) -> None:
    integration = fresh(runner, "bitrix24")
    params = bitrix_params(runner, integration, scope="crm")
    original = runner.bitrix24._pair

    def without_imopenlines(domain: str, client_id: str) -> dict[str, Any]:
        return {**original(domain, client_id), "scope": "crm,im"}

    runner.bitrix24._pair = without_imopenlines  # type: ignore[method-assign]
    try:
        assert runner.get("/oauth2/callback", params).status_code == 200
    finally:
        runner.bitrix24._pair = original  # type: ignore[method-assign]
    state, reason = steps(runner, integration.integration_id)["rights"]
    assert state == "failed"
    assert reason is not None
    assert "imopenlines" in reason


def test_a_failed_connect_keeps_its_reason(runner: LocalRunner) -> None:
    integration = fresh(runner, "bitrix24")
    params = bitrix_params(runner, integration, domain="someone-else.bitrix24.ru")
    assert runner.get("/oauth2/callback", params).status_code == 403
    found = status(runner, integration.integration_id)
    assert found["last_error"] == "connect failed: domain_mismatch"
    state, reason = steps(runner, integration.integration_id)["oauth_connected"]
    assert state == "failed"
    assert reason is not None
    assert "domain_mismatch" in reason


def test_a_rotated_webhook_url_works_at_once_and_the_old_one_for_its_grace(runner: LocalRunner) -> None:
    """Rotation never refuses the new URL (the warm hook reads its settings through before refusing a secret) and
    the old URL keeps working until its grace ends."""
    from leadbridge.aws.store.integrations import DynamoIntegrations

    integration, old_secret, account = new_amo_integration(runner)
    body = sample_body(
        "amo_hook", "talk_add.json", **talk_fields("add", 5_201, 52_010, 520_100, integration.account_name, account)
    )
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{old_secret}/", body).status_code == 200  # warm
    issued = httpx.post(f"{runner.base_url}/integrations/{integration.integration_id}/webhook-secret", timeout=30)
    new_url = issued.json()["webhook_url"]
    new_path = "/" + new_url.split("/", 3)[3]
    assert runner.post(new_path, body).status_code == 200  # at once, whatever the hook had cached
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{old_secret}/", body).status_code == 200
    stored = DynamoIntegrations(runner.stack.ref("IntegrationsTable")).get(integration.integration_id)
    assert stored is not None
    assert stored.previous_secret_until is not None
    assert stored.previous_secret_until > time.time()
    again = httpx.post(f"{runner.base_url}/integrations/{integration.integration_id}/webhook-secret", timeout=30)
    assert runner.post("/" + again.json()["webhook_url"].split("/", 3)[3], body).status_code == 200
    # Two rotations on, the first URL is neither the current secret nor the one in its grace: refused.
    refused = runner.post(f"/hooks/amocrm/{integration.integration_id}/{old_secret}/", body)
    assert refused.status_code == 403
    runner.drain(timeout=60)
    runner.take_leads()


def test_a_replaced_secret_works_only_while_its_grace_lasts() -> None:
    from leadbridge.contract.integration import Integration
    from leadbridge.contract.webhook_secret import hash_secret
    from leadbridge.flows.hooks.intake import _secret_of

    integration = Integration(
        integration_id="x",
        crm="amocrm",
        crm_domain="x.amocrm.ru",
        webhook_secret_hash=hash_secret("new-secret-value"),
        previous_webhook_secret_hash=hash_secret("old-secret-value"),
        previous_secret_until=1_000,
    )
    assert _secret_of(integration, "new-secret-value", now=5_000)
    assert _secret_of(integration, "old-secret-value", now=999)
    assert not _secret_of(integration, "old-secret-value", now=1_000)
    assert not _secret_of(integration, "another-value", now=0)


def test_an_amocrm_user_who_may_not_read_the_events_log_is_named_at_connect(runner: LocalRunner) -> None:
    from tests.integration.test_oauth_connect import amo_params

    integration = fresh(runner, "amocrm")
    runner.amocrm.accounts[integration.account_name].denied_paths = {"/api/v4/events"}
    assert runner.get("/oauth2/callback", amo_params(runner, integration)).status_code == 200
    state, reason = steps(runner, integration.integration_id)["rights"]
    assert state == "failed"
    assert reason is not None
    assert "GET /api/v4/events" in reason


def test_a_delivery_taken_is_stamped_by_the_worker_not_by_the_hook(runner: LocalRunner) -> None:
    """The hook's one request for a delivery it takes is the inbox's: ``last_webhook_at`` comes with the worker's
    counters for the batch, at the time the hook took it."""
    from tests.integration.helpers import add_amo_talks, integration_status, post_amo_talks

    integration, secret, account = new_amo_integration(runner)
    add_amo_talks(runner, integration, [6_301])
    before = time.time()
    post_amo_talks(runner, integration, secret, account, [6_301])
    posted = time.time()
    assert "last_webhook_at" not in integration_status(runner, integration.integration_id)
    assert steps(runner, integration.integration_id)["webhook"][0] == "missing"
    runner.drain(timeout=60)
    assert [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    stamped = float(integration_status(runner, integration.integration_id)["last_webhook_at"])
    assert before - 1 <= stamped <= posted + 1  # when the hook took it, not when the worker ran
    assert steps(runner, integration.integration_id)["webhook"][0] == "ok"

"""DynamoDB's TTL, which the local stack applies (moto does not): only items meant to expire may carry it.

A connected integration's tokens must outlive every access token's life with the TTL sweeper running; an OAuth
state's nonce and a ledger record expire as designed.
"""

from __future__ import annotations

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.tokens import DynamoTokens
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import (
    bitrix_fields,
    new_amo_integration,
    new_bitrix_integration,
    sample_body,
    talk_fields,
)
from tests.integration.test_bitrix24_pipeline import seed_lead

THREE_DAYS = 3 * 86400  # past amoCRM's 1-day and Bitrix24's 1-hour access tokens


def test_tokens_survive_ttl_after_every_access_token_expired(runner: LocalRunner) -> None:
    amo, amo_secret, amo_account = new_amo_integration(runner)
    b24, b24_secret, member, app_token = new_bitrix_integration(runner)
    sub = amo.account_name
    runner.amocrm.add_talk(
        sub, 610, lead_id=6100, contact_id=61000, origin="telegram", created_at=1773223766, lead={}, contact={}
    )
    seed_lead(runner, b24.crm_domain, 61_000)
    table = runner.stack.ref("IntegrationsTable")
    runner.clock.advance(THREE_DAYS)
    try:
        runner.expire_ttl()
        tokens = DynamoTokens(table)
        for integration in (amo, b24):
            stored = tokens.read(integration.integration_id)
            assert stored is not None, f"{integration.crm} tokens were deleted by TTL"
            assert stored.state == "active"

        amo_body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 610, 6100, 61000, sub, amo_account))
        assert runner.post(f"/hooks/amocrm/{amo.integration_id}/{amo_secret}/", amo_body).status_code == 200
        b24_body = sample_body(
            "bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(b24, member, app_token, 61_000)
        )
        assert runner.post(f"/hooks/bitrix24/{b24.integration_id}/{b24_secret}", b24_body).status_code == 200
        runner.drain(timeout=120)
        runner.expire_ttl()
    finally:
        runner.clock.advance(-THREE_DAYS)
    leads = {
        lead["integration_id"]: lead["source_entity"]["id"]
        for lead in runner.take_leads()
        if lead["integration_id"] in {amo.integration_id, b24.integration_id}
    }
    assert leads == {amo.integration_id: "610", b24.integration_id: "61000"}
    for integration in (amo, b24):
        assert DynamoIntegrations(table).status(integration.integration_id)["connection_state"] == "connected"


def test_ttl_deletes_what_is_meant_to_expire_and_nothing_else(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    integrations = DynamoIntegrations(runner.stack.ref("IntegrationsTable"))
    assert integrations.consume_state(integration.integration_id, "nonce-ttl", expires_at=1)
    assert not integrations.consume_state(integration.integration_id, "nonce-ttl", expires_at=1)
    assert runner.expire_ttl() >= 1
    # The nonce is gone (its state expired long ago, so the signature check refuses it anyway) ...
    assert integrations.consume_state(integration.integration_id, "nonce-ttl", expires_at=1)
    # ... and the settings and tokens are still there.
    assert integrations.get(integration.integration_id) is not None
    assert DynamoTokens(runner.stack.ref("IntegrationsTable")).read(integration.integration_id) is not None

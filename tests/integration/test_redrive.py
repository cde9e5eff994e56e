"""After a fix, redrive moves dead-lettered events back; the lead comes out once; repeating moves nothing."""

from __future__ import annotations

import pytest

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.flows.recovery.redrive import redrive
from leadbridge_local.fakes.base import Faults
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import new_amo_integration, sample_body, talk_fields


@pytest.mark.slow
def test_redrive_after_the_crm_recovers(runner: LocalRunner) -> None:
    integration, secret, account_id = new_amo_integration(runner, amo_note_enabled=False)
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub,
        610,
        lead_id=6100,
        contact_id=61000,
        origin="telegram",
        created_at=1773223766,
        lead={},
        contact={"name": "Ann"},
    )
    saved = runner.amocrm.faults
    runner.amocrm.faults = Faults(ratio=1.0, kinds=("5xx",))  # the CRM is down for longer than the retries last
    try:
        body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 610, 6100, 61000, sub, account_id))
        assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
        runner.drain(timeout=300)
    finally:
        runner.amocrm.faults = saved  # the fix: the CRM answers again
    sqs = runner.stack.client("sqs")
    dlq, inbox = runner.stack.ref("InboxDeadLetterQueue"), runner.stack.ref("InboxQueue")
    assert runner.queue_depth("InboxDeadLetterQueue") >= 1

    report = redrive(sqs, dlq, inbox)
    assert report.moved >= 1
    assert runner.queue_depth("InboxDeadLetterQueue") == 0
    assert redrive(sqs, dlq, inbox).moved == 0  # repeating is harmless
    runner.drain()
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert [lead["source_entity"]["id"] for lead in leads] == ["610"]
    assert (
        DynamoIntegrations(runner.stack.ref("IntegrationsTable")).status(integration.integration_id)["connection_state"]
        == "connected"
    )

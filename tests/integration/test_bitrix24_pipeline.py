"""Bitrix24: lead and deal events -> inbox -> worker (shared batch reads) -> leads queue, over local AWS and the fake."""

from __future__ import annotations

import time

import pytest

from leadbridge.aws.store.ledger import DynamoLedger
from leadbridge_local.demo_setup import DEMO_B24, install_demo_integrations
from leadbridge_local.runner import LocalRunner
from tests.conftest import load_event
from tests.integration.helpers import bitrix_fields, new_bitrix_integration, sample_body


def seed_lead(
    runner: LocalRunner,
    domain: str,
    lead_id: int,
    activity_after: float = 0.0,
    created: str = "2026-03-11T12:20:00+03:00",
) -> None:
    runner.bitrix24.add_open_lines_lead(domain, lead_id, activity_after=activity_after, created=created)


def test_samples_from_events(runner: LocalRunner) -> None:
    install_demo_integrations(runner)
    for name in sorted(p.name for p in (load_event.__globals__["EVENTS"] / "bitrix_hook").glob("*.json")):
        event = load_event("bitrix_hook", name)
        status = runner.post(event["rawPath"], sample_body("bitrix_hook", name)).status_code
        assert status == (403 if name == "forged_application_token.json" else 200)
    runner.drain()
    leads = {
        lead["source_entity"]["id"]: lead
        for lead in runner.take_leads()
        if lead["integration_id"] == DEMO_B24.integration_id
    }
    assert set(leads) == {"1205", "1206", "77"}  # the form lead (1207) is skipped, the forged one never enqueued
    widget = leads["1205"]
    assert widget["channel"] == {"kind": "online_chat", "messenger": None, "origin": "livechat"}
    assert (widget["attribution"]["kind"], widget["attribution"]["session_id"]) == ("session", "2814407799")
    assert widget["attribution"]["utm"]["source"] == "google"
    assert [m["author"] for m in widget["chat"]["messages"]] == ["system", "client", "system", "operator"]
    assert widget["chat"]["messages"][1]["text"] == "Hello! Do you deliver to Kazan?"
    assert widget["chat"]["messages"][3]["text"] == "Yes, within two days.\nAnything else?"
    telegram = leads["1206"]
    assert (
        telegram["attribution"]["kind"],
        telegram["attribution"]["source_id"],
        telegram["attribution"]["site_id"],
    ) == ("messenger_default", 502, 601)
    assert telegram["chat"]["messages"][1]["text"] == "Да, вот ссылка"
    deal = leads["77"]
    assert deal["source_entity"] == {"type": "deal", "id": "77"}
    assert deal["contact"] == {"name": "Мария Кузнецова", "phones": ["+79261234567"], "emails": ["maria@example.ru"]}
    ledger = DynamoLedger(runner.stack.ref("LeadLedgerTable"), 90)
    skipped = ledger.get("bitrix24:d897063e1ce7c5eb9f04b9751eef5915:lead:1207")
    assert skipped is not None
    assert skipped.state == "skipped"


def test_waits_for_the_open_lines_activity(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    seed_lead(runner, integration.crm_domain, 4001, activity_after=2.0)
    body = sample_body(
        "bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(integration, member, token, 4001)
    )
    assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 200
    started = time.monotonic()
    runner.drain()
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert len(leads) == 1
    assert leads[0]["chat"]["messages"][0]["text"] == "Привет"
    assert time.monotonic() - started >= 1.0  # it came back for the activity instead of emitting without it


@pytest.mark.slow
def test_burst_of_500_leads_for_one_portal(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    portal = runner.bitrix24.portals[integration.crm_domain]
    for lead_id in range(20_000, 20_500):
        seed_lead(runner, integration.crm_domain, lead_id)
    url = f"/hooks/bitrix24/{integration.integration_id}/{secret}"
    for lead_id in range(20_000, 20_500):
        body = sample_body(
            "bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(integration, member, token, lead_id)
        )
        # 500 deliveries may come faster than one integration's webhook share (a fast machine posts them within one
        # admission window); Bitrix24 does not deliver again, its sweep would find the lead: posted again here.
        while (status := runner.post(url, body).status_code) == 429:
            time.sleep(1)
        assert status == 200
    violations = runner.bitrix24.counts["limit_violations"]
    requests = runner.bitrix24.counts["api_requests"]
    runner.drain(timeout=600)
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert len(leads) == 500
    assert len({lead["lead_id"] for lead in leads}) == 500
    assert runner.bitrix24.counts["limit_violations"] == violations  # not a single 503 from the portal
    calls = runner.bitrix24.counts["api_requests"] - requests
    assert calls < 500 / 4, f"{calls} REST calls for 500 leads"
    assert portal.bucket <= 50

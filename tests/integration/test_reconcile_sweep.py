"""The sweep recovers Bitrix24 leads whose events never reached us, and never doubles one that did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import bitrix_fields, last_sweep, new_bitrix_integration, sample_body
from tests.integration.test_bitrix24_pipeline import seed_lead


def test_sweep_recovers_events_lost_at_the_sender(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    recent = (datetime.now(UTC) - timedelta(minutes=5)).astimezone().isoformat(timespec="seconds")
    ids = list(range(30_000, 30_060))  # more than one page of 50
    for lead_id in ids:
        seed_lead(runner, integration.crm_domain, lead_id, created=recent)
    runner.bitrix24.portals[integration.crm_domain].leads[29_999] = {
        "ID": "29999",
        "SOURCE_ID": "WEB",
        "DATE_CREATE": "2020-01-01T00:00:00+00:00",
    }
    delivered = ids[:10]
    url = f"/hooks/bitrix24/{integration.integration_id}/{secret}"
    for lead_id in delivered:
        body = sample_body(
            "bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(integration, member, token, lead_id)
        )
        assert runner.post(url, body).status_code == 200
    runner.drain()
    # A webhook that arrives while the sweep runs: both paths see it, one lead comes out.
    late = sample_body(
        "bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(integration, member, token, ids[-1])
    )
    assert runner.post(url, late).status_code == 200

    runner.run_schedule("recovery")
    ours = last_sweep(runner, integration.integration_id)
    assert (ours["listed"], ours["already_known"], ours["enqueued"], ours["complete"]) == (60, 10, 50, True)
    runner.drain()
    runner.run_schedule("recovery")
    again = last_sweep(runner, integration.integration_id)
    assert (again["listed"], again["enqueued"]) == (60, 0)  # the overlap lists them again; all are known

    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    emitted = sorted(int(lead["source_entity"]["id"]) for lead in leads)
    assert emitted == ids  # the old form lead 29999 is outside the window; every other one exactly once


def test_a_portal_reading_the_filter_in_its_own_zone_loses_nothing(runner: LocalRunner) -> None:
    """Some portals read ``>=DATE_CREATE`` as wall time in their own zone, whatever offset the stamp names: for a
    portal at UTC-5 the window would open 5 hours late. The filter opens early; each row's own DATE_CREATE decides."""
    integration, _, _, _ = new_bitrix_integration(runner)
    portal_zone = timezone(timedelta(hours=-5))
    runner.bitrix24.portals[integration.crm_domain].filter_zone = portal_zone
    inside = (datetime.now(UTC) - timedelta(hours=3)).astimezone(portal_zone).isoformat(timespec="seconds")
    outside = (datetime.now(UTC) - timedelta(hours=9)).astimezone(portal_zone).isoformat(timespec="seconds")
    seed_lead(runner, integration.crm_domain, 31_000, created=inside)  # its webhook never came
    seed_lead(runner, integration.crm_domain, 31_001, created=outside)  # before the first window (6 h)
    runner.run_schedule("recovery")
    ours = last_sweep(runner, integration.integration_id)
    assert (ours["listed"], ours["enqueued"]) == (1, 1)
    runner.drain()
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert [lead["source_entity"]["id"] for lead in leads] == ["31000"]

"""The amoCRM safety net: talks whose webhook never arrived are found in the events log and emitted exactly once."""

from __future__ import annotations

import time

from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import add_amo_talks, new_amo_integration, post_amo_talks

DELIVERED = range(5_001, 5_006)
LOST = range(5_006, 5_011)
TOO_RECENT = 5_011  # its webhook may still be on its way: left to the next run


def sweep_report(runner: LocalRunner, integration_id: str) -> dict[str, object]:
    reports = runner.run_scheduled("ReconcileSweepFunction")["reports"]
    return next(r for r in reports if r["integration_id"] == integration_id)


def test_talks_whose_webhook_never_arrived_are_swept_in_once(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    ten_minutes_ago = int(time.time()) - 600
    add_amo_talks(runner, integration, (*DELIVERED, *LOST), created_at=ten_minutes_ago)
    add_amo_talks(runner, integration, [TOO_RECENT], created_at=int(time.time()))
    post_amo_talks(runner, integration, secret, account, DELIVERED)  # the others' webhooks were lost
    runner.drain(timeout=60)

    report = sweep_report(runner, integration.integration_id)
    assert (report["listed"], report["already_known"], report["enqueued"]) == (10, 5, 5)
    runner.drain(timeout=60)
    again = sweep_report(runner, integration.integration_id)  # nothing new: the watermark and the ledger hold
    assert again["enqueued"] == 0
    runner.drain(timeout=60)
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert sorted(int(lead["source_entity"]["id"]) for lead in leads) == [*DELIVERED, *LOST]
    swept = [lead for lead in leads if int(lead["source_entity"]["id"]) in LOST]
    assert all(lead["channel"]["messenger"] == "telegram" for lead in swept)
    assert all(lead["contact"]["name"] == "Ann" for lead in swept)

"""CRM limits that hold across Lambda's execution environments and functions: the budget is in DynamoDB.

The worker drains on four environments (processes) at random, while other callers of the same CRM account (as the
sweep or the OAuth callback would be, in other functions: other processes) take requests from the same budget.
Two verdicts, each on honest instants: the send instants the product's HTTP client recorded keep the CRM's rule
(for amoCRM with the product's own margin for network jitter), and the fakes, stamping arrivals in a process of
their own, count no violation of that rule.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from datetime import UTC, datetime, timedelta

from leadbridge.http.ratelimit import ARRIVAL_JITTER_SECONDS
from leadbridge_local.runner import LocalRunner
from tests.integration.crm_rules import amocrm_window_violations, bitrix24_bucket_overflows
from tests.integration.helpers import (
    add_amo_talks,
    bitrix_fields,
    new_amo_integration,
    new_bitrix_integration,
    post_amo_talks,
    sample_body,
)
from tests.integration.other_function import call_the_account

TALKS = range(2_001, 2_061)


def test_amocrm_limit_holds_across_environments_and_other_callers(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner)
    add_amo_talks(runner, integration, TALKS)
    post_amo_talks(runner, integration, secret, account, TALKS)
    violations = runner.amocrm.counts["limit_violations"]
    context = multiprocessing.get_context("spawn")
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "LEADBRIDGE_", "POWERTOOLS_"))}
    env |= {
        "LIMITS_TABLE": runner.stack.ref("LimitsTable"),
        "INTEGRATIONS_TABLE": runner.stack.ref("IntegrationsTable"),
    }
    pipes, others = [], []
    for _ in range(2):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=call_the_account, args=(integration, env, 8.0, sender))
        process.start()
        pipes.append(receiver)
        others.append(process)
    runner.drain(timeout=300)
    other_calls = [pipe.recv() for pipe in pipes]
    for process in others:
        process.join(30)
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert len(leads) == len(TALKS)
    assert sum(other_calls) > 5
    assert runner.pool("LeadWorkerFunction").used() >= 2  # batches really landed on different environments
    sends = runner.crm_sends(f"amocrm:{integration.crm_domain.lower()}")
    assert len(sends) >= len(TALKS) // 10 + sum(other_calls)
    assert amocrm_window_violations(sends, window=1.0 + ARRIVAL_JITTER_SECONDS) == 0
    assert runner.amocrm.counts["limit_violations"] == violations


def test_bitrix24_limit_holds_with_the_sweep_running_during_a_burst(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    recent = (datetime.now(UTC) - timedelta(minutes=2)).isoformat(timespec="seconds")
    for lead_id in range(80_001, 80_121):
        runner.bitrix24.add_open_lines_lead(integration.crm_domain, lead_id, created=recent)
        body = sample_body(
            "bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(integration, member, token, lead_id)
        )
        assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 200
    violations = runner.bitrix24.counts["limit_violations"]
    sweeps = threading.Thread(target=lambda: [runner.run_schedule("recovery", timeout=300) for _ in range(3)])
    sweeps.start()
    runner.drain(timeout=300)
    sweeps.join(120)
    runner.drain(timeout=120)
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert len({lead["source_entity"]["id"] for lead in leads}) == len(leads) == 120
    sends = runner.crm_sends(f"bitrix24:{integration.crm_domain.lower()}")
    assert len(sends) >= 120 // 50
    assert bitrix24_bucket_overflows(sends) == 0
    assert runner.bitrix24.counts["limit_violations"] == violations


def test_amocrm_batch_reads_and_their_fallback_when_an_account_refuses_filters(runner: LocalRunner) -> None:
    from tests.integration.test_conversations import service

    for filters_ignored in (False, True):
        integration, secret, account = new_amo_integration(runner)
        sub = integration.account_name
        runner.amocrm.accounts[sub].filters_ignored = filters_ignored
        runner.amocrm.accounts[sub].leads[99] = {"id": 99, "created_at": 1700000000}  # a lead of another chat
        talks = range(3_001, 3_011)
        add_amo_talks(runner, integration, talks, origin="vk")
        post_amo_talks(runner, integration, secret, account, talks)
        before = runner.amocrm.counts["api_requests"]
        runner.drain(timeout=120)
        calls = runner.amocrm.counts["api_requests"] - before
        leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
        assert len(leads) == len(talks)
        notices = service(runner).status(integration.integration_id).notices
        if filters_ignored:  # one read per lead and per contact, and the status says why
            assert calls >= 2 * len(talks)
            assert notices == ["filtered_reads_refused"]
        else:  # leads, contacts, notes: a few requests for the whole burst
            assert calls <= 3 * 2
            assert notices == []

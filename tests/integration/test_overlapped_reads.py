"""A worker batch reads its accounts at the same time: a batch of several portals or amoCRM accounts waits for its
slowest one, not for all of them in a row (each account's own requests stay one after another, inside its shared
budget)."""

from __future__ import annotations

from leadbridge.crms.amocrm.enricher import AMOCRM_ACCOUNTS_AT_ONCE
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import (
    add_amo_talks,
    bitrix_fields,
    new_amo_integration,
    new_bitrix_integration,
    post_amo_talks,
    sample_body,
)

LATENCY = 2.0  # every CRM answer waits this long: requests in a row would arrive at least this far apart


def drain_with_slow_crms(runner: LocalRunner) -> None:
    """One drain with every CRM answer ``LATENCY`` late, in one environment (the batch's own threads overlap)."""
    runner.crm_server.latency = (LATENCY, LATENCY)
    try:
        runner.drain(timeout=60, environments=0)
    finally:
        runner.crm_server.latency = (0.0, 0.0)


def test_a_batch_of_three_portals_reads_them_at_the_same_time(runner: LocalRunner) -> None:
    made = [new_bitrix_integration(runner) for _ in range(3)]
    runner.drain(timeout=60, environments=0)
    for n, (integration, secret, member, token) in enumerate(made):
        runner.bitrix24.add_open_lines_lead(integration.crm_domain, 7_401 + n)
        body = sample_body("bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(
            integration, member, token, 7_401 + n
        ))  # fmt: skip
        assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 200
    domains = {integration.crm_domain for integration, _, _, _ in made}
    runner.bitrix24.request_log.clear()
    drain_with_slow_crms(runner)
    reads = [(at, host) for at, host, path in runner.bitrix24.request_log if path.startswith("/rest/batch")]
    assert {host for _, host in reads} == domains  # one batch call each
    assert len(reads) == 3
    arrivals = sorted(at for at, _ in reads)
    # All three arrived before the first could have been answered.
    assert arrivals[-1] - arrivals[0] < LATENCY
    leads = [lead for lead in runner.take_leads() if lead["crm_account"] in {i.account_name for i, *_ in made}]
    assert len(leads) == 3


def test_a_batch_of_amocrm_accounts_reads_two_at_a_time(runner: LocalRunner) -> None:
    made = [new_amo_integration(runner) for _ in range(AMOCRM_ACCOUNTS_AT_ONCE + 1)]
    runner.drain(timeout=60, environments=0)
    for n, (integration, secret, account) in enumerate(made):
        add_amo_talks(runner, integration, [7_501 + n])
        post_amo_talks(runner, integration, secret, account, [7_501 + n])
    runner.amocrm.request_log.clear()
    drain_with_slow_crms(runner)
    hosts = {integration.crm_domain for integration, _, _ in made}
    arrivals = sorted(at for at, host, path in runner.amocrm.request_log if path == "/api/v4/leads" and host in hosts)
    assert len(arrivals) == len(made)  # one read of the leads per account
    # Two arrived before the first could have been answered; the third waited for one of them to finish.
    assert arrivals[1] - arrivals[0] < LATENCY
    assert arrivals[2] - arrivals[0] >= LATENCY
    leads = [lead for lead in runner.take_leads() if lead["crm_account"] in {i.account_name for i, *_ in made}]
    assert len(leads) == len(made)
    notes = [host for _, host, asked in runner.amocrm.request_log if asked == "/api/v4/leads/notes"]
    assert sorted(notes) == sorted(hosts)  # one each, one account after another (``AmoEnricher.finish_batch``)

"""A worker batch reads its accounts at the same time: a batch of several portals waits for its slowest one, not
for all of them in a row (each portal's own requests stay one after another, inside its shared budget)."""

from __future__ import annotations

from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import bitrix_fields, new_bitrix_integration, sample_body

LATENCY = 2.0  # every CRM answer waits this long: requests in a row would arrive at least this far apart


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
    runner.crm_server.latency = (LATENCY, LATENCY)
    try:
        runner.drain(timeout=60, environments=0)
    finally:
        runner.crm_server.latency = (0.0, 0.0)
    reads = [(at, host) for at, host, path in runner.bitrix24.request_log if path.startswith("/rest/batch")]
    assert {host for _, host in reads} == domains  # one batch call each
    assert len(reads) == 3
    arrivals = sorted(at for at, _ in reads)
    # All three arrived before the first could have been answered.
    assert arrivals[-1] - arrivals[0] < LATENCY
    leads = [lead for lead in runner.take_leads() if lead["crm_account"] in {i.account_name for i, *_ in made}]
    assert len(leads) == 3

"""Scheduled work fans out: every active integration gets its own job, one job's failure or lack of time touches
no other, and a window too big for one job goes on from its position."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.work_index import WorkIndex, all_shards
from leadbridge.flows.scheduled.reindex import reindex
from leadbridge_local.lambda_events import LambdaContextStub
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import (
    dead_jobs,
    integration_status,
    last_sweep,
    new_amo_integration,
    new_bitrix_integration,
)


def recent() -> str:
    return (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")


def active_ids(runner: LocalRunner) -> set[str]:
    index = WorkIndex(runner.stack.ref("IntegrationsTable"))
    found: set[str] = set()
    for shard in all_shards("active"):
        cursor = None
        while True:
            ids, cursor = index.page(shard, cursor, 100)
            found.update(ids)
            if cursor is None:
                break
    return found


def test_every_active_integration_gets_its_sweep_job_and_no_paused_one(runner: LocalRunner) -> None:
    active = [new_bitrix_integration(runner)[0] for _ in range(3)] + [new_amo_integration(runner)[0] for _ in range(3)]
    paused = [new_bitrix_integration(runner, active=False)[0], new_amo_integration(runner, active=False)[0]]
    indexed = active_ids(runner)
    assert {i.integration_id for i in active} <= indexed
    assert not {i.integration_id for i in paused} & indexed
    before = int(time.time())

    runner.run_schedule("recovery")

    for integration in active:
        status = integration_status(runner, integration.integration_id)
        assert int(status["sweep_finished_at"]) >= before, integration.integration_id
        assert status["last_sweep"]["complete"] is True
    for integration in paused:
        assert "sweep_finished_at" not in integration_status(runner, integration.integration_id)


def test_a_failing_portal_ends_as_a_failed_job_and_never_stops_the_others(runner: LocalRunner) -> None:
    failing = new_bitrix_integration(runner)[0]
    healthy = new_bitrix_integration(runner)[0]
    runner.bitrix24.add_open_lines_lead(failing.crm_domain, 91_001, created=recent())
    runner.bitrix24.add_open_lines_lead(healthy.crm_domain, 91_002, created=recent())
    runner.crm_server.failing_hosts.add(failing.crm_domain)
    try:
        runner.run_schedule("recovery", timeout=120)
    finally:
        runner.crm_server.failing_hosts.discard(failing.crm_domain)

    assert (
        last_sweep(runner, healthy.integration_id)["enqueued"],
        last_sweep(runner, healthy.integration_id)["complete"],
    ) == (1, True)
    failure = integration_status(runner, failing.integration_id)["last_job_failure"]
    assert failure["kind"] == "sweep"
    dead = dead_jobs(runner, failing.integration_id)
    assert len(dead) == 1
    assert dead[0]["MessageAttributes"]["reason"]["StringValue"].startswith("failed 3 times: ")
    assert "sweep_finished_at" not in integration_status(runner, failing.integration_id)  # its window never moved

    runner.run_schedule("recovery")  # a portal that just failed a whole run is left alone for a while
    assert "sweep_finished_at" not in integration_status(runner, failing.integration_id)
    assert dead_jobs(runner, failing.integration_id) == []
    statuses = DynamoIntegrations(runner.stack.ref("IntegrationsTable"))
    assert statuses.status(failing.integration_id)["failed_runs_sweep"] == 1
    runner.stack.client("dynamodb").update_item(  # the backoff (30 minutes after one failed run) has passed
        TableName=runner.stack.ref("IntegrationsTable"),
        Key={"pk": {"S": f"INTEGRATION#{failing.integration_id}"}, "sk": {"S": "STATUS"}},
        UpdateExpression="SET gave_up_sweep_at = :at",
        ExpressionAttributeValues={":at": {"N": str(int(time.time()) - 31 * 60)}},
    )
    runner.run_schedule("recovery")  # the portal answers again: its next job sweeps what it missed
    assert last_sweep(runner, failing.integration_id)["enqueued"] == 1
    assert "failed_runs_sweep" not in statuses.status(failing.integration_id)
    runner.drain(timeout=120)
    emitted = {(lead["integration_id"], lead["source_entity"]["id"]) for lead in runner.take_leads()}
    assert {(failing.integration_id, "91001"), (healthy.integration_id, "91002")} <= emitted


class OnePageOfTime(LambdaContextStub):
    """An invocation with time for one page: the first look at the clock leaves plenty, every later one too little."""

    def __init__(self) -> None:
        super().__init__(function_name="ScheduledJobsFunction", timeout_seconds=120)
        self.looks = 0

    def get_remaining_time_in_millis(self) -> int:
        self.looks += 1
        return 120_000 if self.looks == 1 else 20_000


def test_a_job_out_of_time_leaves_its_position_and_the_next_one_goes_on_from_it(runner: LocalRunner) -> None:
    integration = new_bitrix_integration(runner)[0]
    ids = list(range(92_000, 92_120))  # three pages of leads, then the deals
    for lead_id in ids:
        runner.bitrix24.add_open_lines_lead(integration.crm_domain, lead_id, created=recent())
    reports = []
    for _ in range(6):
        runner.run_schedule("recovery", environments=0, context_factory=OnePageOfTime)
        reports.append(last_sweep(runner, integration.integration_id))
        if reports[-1]["complete"]:
            break
    assert [(r["listed"], r["enqueued"], r["complete"]) for r in reports] == [
        (50, 50, False),
        (50, 50, False),
        (20, 20, False),  # the leads are done; no time left for the deals
        (0, 0, True),
    ]
    status = integration_status(runner, integration.integration_id)
    assert "sweep_position" not in status
    runner.drain(timeout=120)
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert sorted(int(lead["source_entity"]["id"]) for lead in leads) == ids  # each exactly once


def test_an_integration_saved_before_the_index_gets_its_jobs_after_reindex(runner: LocalRunner) -> None:
    integration = new_bitrix_integration(runner)[0]
    table = runner.stack.ref("IntegrationsTable")
    runner.stack.client("dynamodb").update_item(  # as a version before the scheduled-work index stored it
        TableName=table,
        Key={"pk": {"S": f"INTEGRATION#{integration.integration_id}"}, "sk": {"S": "SETTINGS"}},
        UpdateExpression="REMOVE work_shard",
    )
    assert integration.integration_id not in active_ids(runner)

    assert reindex(table)["settings"] == 1
    assert integration.integration_id in active_ids(runner)
    assert reindex(table) == {"settings": 0, "backfills": 0}  # run again: nothing to do
    runner.run_schedule("recovery")
    assert last_sweep(runner, integration.integration_id)["complete"] is True

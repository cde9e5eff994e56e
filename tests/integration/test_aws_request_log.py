"""The local AWS's request log counts every request by service and operation; what the worker reports it spent
(``batch done``: ``aws_requests``) must be what the log saw, or the cost per lead in the benchmarks is a guess."""

from __future__ import annotations

from collections import Counter

from leadbridge.aws.request_count import requests_so_far
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import add_amo_talks, new_amo_integration, post_amo_talks

TALKS = range(61_001, 61_021)
WORKER_ONLY = (
    "dynamodb:",
    "sqs:SendMessage",
    "secretsmanager:",
)  # the pollers receive and delete; the TTL sweeper scans


def test_the_request_log_counts_what_the_worker_reports(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner)
    add_amo_talks(runner, integration, TALKS)
    post_amo_talks(runner, integration, secret, account, TALKS)
    log = runner.stack.moto.app.requests
    seen_before, reported_before = Counter(log), requests_so_far()
    runner.drain(timeout=120, environments=0)  # the worker in this process: its counter is the one read here
    seen = Counter(log) - seen_before
    reported = requests_so_far() - reported_before
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert len(leads) == len(TALKS)
    worker_ops = {op for op in reported if op.startswith(WORKER_ONLY)}
    assert {"dynamodb:UpdateItem", "dynamodb:BatchGetItem", "sqs:SendMessageBatch"} <= worker_ops
    assert {op: seen[op] for op in worker_ops} == {op: reported[op] for op in worker_ops}
    assert seen["sqs:ReceiveMessage"] >= 1  # the poller's, counted as AWS bills them

"""The local AWS's request log counts every request by service and operation; what the worker reports it spent
(``batch done``: ``aws_requests``) must be what the log saw, or the cost per lead in the benchmarks is a guess."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

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


EMITTED = "emitted_at = :emitted_at"  # the ledger's record of a lead that went out
CLAIM = "SET ledger_state = :busy"  # the ledger's claim, alone or in a transaction


def emitted_items(runner: LocalRunner, integration_id: str) -> list[dict[str, Any]]:
    pages = (
        runner.stack.client("dynamodb").get_paginator("scan").paginate(TableName=runner.stack.ref("LeadLedgerTable"))
    )
    items = [item for page in pages for item in page["Items"]]
    return [item for item in items if item.get("integration_id", {}).get("S") == integration_id]


@pytest.mark.parametrize("transactions_fail", [False, True], ids=["together", "each_apart_after_a_failure"])
def test_a_batchs_conversations_are_claimed_in_one_write_and_recorded_in_another(
    runner: LocalRunner, transactions_fail: bool
) -> None:
    """Twenty talks of one account are two batches of ten: each batch's conversations are claimed in one write and
    its leads recorded emitted in one more (one each a lead before). When the second fails, each lead is recorded
    apart: every conversation still says emitted, with its own lead's message, and no lead goes out twice."""
    integration, secret, account = new_amo_integration(runner)
    add_amo_talks(runner, integration, TALKS)
    post_amo_talks(runner, integration, secret, account, TALKS)
    app = runner.stack.moto.app
    app.watched[EMITTED] = app.watched[CLAIM] = 0
    if transactions_fail:  # every attempt at the batch's write (the SDK's retries included) answers 500
        app.fault = lambda environ, body: EMITTED.encode() in body and b"TransactItems" in body
    try:
        runner.drain(timeout=120, environments=0)
        writes, claims = app.watched[EMITTED], app.watched[CLAIM]
    finally:
        app.watched.pop(EMITTED, None)
        app.watched.pop(CLAIM, None)
        app.fault = None
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert len(leads) == len(TALKS) == len({lead["lead_id"] for lead in leads})
    items = emitted_items(runner, integration.integration_id)
    assert sorted(item["ledger_state"]["S"] for item in items) == ["emitted"] * len(TALKS)
    assert len({item["leads_message_id"]["S"] for item in items}) == len(TALKS)
    assert sorted(item["attempts"]["N"] for item in items) == ["1"] * len(TALKS)
    assert claims == 2
    if transactions_fail:
        assert app.injected >= 2  # both batches' writes were refused, then each lead written on its own
        assert writes == app.injected + len(TALKS)
    else:
        assert writes == 2

"""Nothing lost, nothing doubled, with the world failing around the pipeline.

- the fake CRMs fail a third of their requests at random (5xx, stalls past the client timeout, 429 / 503);
- the inbox write fails for some webhooks: the hook answers 5xx; amoCRM retries, Bitrix24 never does;
- every event is delivered twice;
- some worker invocations run out of time mid-batch;
- Bitrix24 events are lost at the sender (the hook endpoint was down for them); the sweep must recover them;
- two poison events (entities the CRM refuses to show) must end in the DLQ with their reason.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadbridge.aws.store.ledger import DynamoLedger
from leadbridge.http.client import TIMEOUT_ENV, crm_http
from leadbridge_local.fakes.base import Faults
from leadbridge_local.lambda_events import LambdaContextStub
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import (
    bitrix_fields,
    last_sweep,
    new_amo_integration,
    new_bitrix_integration,
    sample_body,
    talk_fields,
)
from tests.integration.test_bitrix24_pipeline import seed_lead

AMO_TALKS = range(700, 716)
B24_DELIVERED = range(40_000, 40_012)
B24_LOST_AT_SENDER = range(40_012, 40_024)
B24_POISON = (40_024, 40_025)


class ShortOnTime(LambdaContextStub):
    """An invocation whose time runs out after ``records`` records."""

    def __init__(self, records: int) -> None:
        super().__init__(function_name="LeadWorkerFunction")
        self.left = records

    def get_remaining_time_in_millis(self) -> int:
        self.left -= 1
        return 60_000 if self.left >= 0 else 1_000


def post(runner: LocalRunner, path: str, body: bytes, attempts: int) -> tuple[bool, int]:
    """Deliver like a CRM: retry a 5xx up to ``attempts`` times. Returns (delivered, retries)."""
    for attempt in range(attempts):
        if runner.post(path, body).status_code < 500:
            return True, attempt
    return False, attempts - 1


@pytest.mark.fault
@pytest.mark.slow
def test_nothing_lost_nothing_doubled_under_faults(runner: LocalRunner) -> None:
    amo, amo_secret, amo_account = new_amo_integration(runner)
    b24, b24_secret, member, token = new_bitrix_integration(runner)
    sub = amo.account_name
    for talk in AMO_TALKS:
        runner.amocrm.add_talk(
            sub,
            talk,
            lead_id=talk * 10,
            contact_id=talk * 100,
            origin="telegram",
            created_at=1773223766,
            lead={},
            contact={"name": "A"},
        )
    recent = (datetime.now(UTC) - timedelta(minutes=3)).isoformat(timespec="seconds")
    for lead_id in (*B24_DELIVERED, *B24_LOST_AT_SENDER, *B24_POISON):
        seed_lead(runner, b24.crm_domain, lead_id, created=recent)
    runner.bitrix24.portals[b24.crm_domain].broken.update(B24_POISON)  # an error no wait mends

    saved_faults = (runner.amocrm.faults, runner.bitrix24.faults)
    runner.amocrm.faults = Faults(ratio=1 / 3, seed=3, stall_seconds=1.5)
    runner.bitrix24.faults = Faults(ratio=1 / 3, seed=5, stall_seconds=1.5)
    os.environ[TIMEOUT_ENV] = "1.0"
    crm_http.cache_clear()
    assert runner.stack.moto is not None
    runner.stack.moto.fail_sends_to("inbox.fifo", ratio=0.4)
    retries_before = runner.retried_records
    try:
        sender_retries = 0
        lost_at_sender = 0
        for talk in AMO_TALKS:
            body = sample_body(
                "amo_hook", "talk_add.json", **talk_fields("add", talk, talk * 10, talk * 100, sub, amo_account)
            )
            for _ in range(2):  # every event twice
                delivered, retries = post(runner, f"/hooks/amocrm/{amo.integration_id}/{amo_secret}/", body, attempts=5)
                sender_retries += retries
                lost_at_sender += not delivered
        for lead_id in (*B24_DELIVERED, *B24_POISON):
            body = sample_body(
                "bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(b24, member, token, lead_id)
            )
            for _ in range(2):
                delivered, _ = post(runner, f"/hooks/bitrix24/{b24.integration_id}/{b24_secret}", body, attempts=1)
                lost_at_sender += not delivered
        runner.stack.moto.fail_sends_to("inbox.fifo", ratio=0)

        deadlines = itertools.cycle([None, None, 2])

        def context() -> Any:
            records = next(deadlines)
            return ShortOnTime(records) if records is not None else None

        runner.drain(timeout=900, context_factory=context)
        recovered = 0
        previous: dict[str, Any] = {}
        for _ in range(6):  # the sweep itself meets the faults; a job that fails is retried, a run is run again
            runner.run_schedule("recovery", timeout=900)
            report = last_sweep(runner, b24.integration_id)
            if report and report != previous:
                recovered += int(report["enqueued"])
                previous = report
            if report.get("complete"):
                break
        runner.drain(timeout=900, context_factory=context)
    finally:
        runner.amocrm.faults, runner.bitrix24.faults = saved_faults
        os.environ.pop(TIMEOUT_ENV, None)
        crm_http.cache_clear()
        runner.stack.moto.fail_sends_to("inbox.fifo", ratio=0)

    leads = [lead for lead in runner.take_leads() if lead["integration_id"] in {amo.integration_id, b24.integration_id}]
    expected = {("talk", str(t)) for t in AMO_TALKS} | {("lead", str(i)) for i in (*B24_DELIVERED, *B24_LOST_AT_SENDER)}
    emitted = [(lead["source_entity"]["type"], lead["source_entity"]["id"]) for lead in leads]
    dead = [
        m
        for m in runner.take_messages("InboxDeadLetterQueue")
        if b24.integration_id in m["Body"] or amo.integration_id in m["Body"]
    ]
    dead_reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"].split(":")[0] for m in dead)
    stuck = runner.stack.client("dynamodb").scan(
        TableName=runner.stack.ref("LeadLedgerTable"),
        FilterExpression="ledger_state = :busy",
        ExpressionAttributeValues={":busy": {"S": "in_progress"}},
    )["Items"]
    injected = sum(
        v
        for k, v in {**runner.amocrm.counts, **{f"b{k}": v for k, v in runner.bitrix24.counts.items()}}.items()
        if "injected_" in k and not k.split("injected_")[1].isdigit()
    )
    lost = len(expected - set(emitted))
    print(
        f"\nfault test: injected {injected} CRM faults and {runner.stack.moto.app.injected} inbox-write faults; "
        f"sender retries {sender_retries}; Bitrix24 deliveries lost at the sender {lost_at_sender} (+{len(B24_LOST_AT_SENDER)} never sent); "
        f"worker retries {runner.retried_records - retries_before}; recovered by the sweep {recovered}; "
        f"emitted {len(emitted)} of {len(expected)}; dead-lettered {len(dead)} ({dead_reasons}); lost {lost}"
    )
    assert lost == 0
    assert len(emitted) == len(set(emitted)) == len(expected)  # exactly one lead per conversation
    assert stuck == []
    assert dead_reasons == ["bad_request", "bad_request"]  # the two poison events, with their reason
    assert injected > 10
    # Each lead the sender never sent came in through the sweep, whatever its reports say: an attempt that enqueued
    # them and then met a fault keeps no report, and the next one finds nothing new in its window.
    ledger = DynamoLedger(runner.stack.ref("LeadLedgerTable"), retention_days=90)
    first_sources = {ledger._raw(f"bitrix24:{member}:lead:{i}").get("first_source") for i in B24_LOST_AT_SENDER}
    assert first_sources == {"sweep"}


@pytest.mark.fault
def test_dynamodb_throttling_the_ledger_loses_and_doubles_nothing(runner: LocalRunner) -> None:
    """Half the ledger's writes refused with ProvisionedThroughputExceededException (a hot partition), and half its
    transactions cancelled for it (the batch's claims and emitted records): retried by the SDK, written one at a
    time, then retried by the inbox; every talk still ends as exactly one lead, none in the DLQ."""
    from tests.integration.helpers import add_amo_talks, post_amo_talks

    integration, secret, account = new_amo_integration(runner)
    talks = range(7_950, 7_958)
    add_amo_talks(runner, integration, talks)
    moto = runner.stack.moto
    assert moto is not None
    moto.throttle_dynamodb(
        runner.stack.ref("LeadLedgerTable"), ratio=0.5, operations=("UpdateItem", "PutItem", "TransactWriteItems")
    )
    injected = moto.app.injected
    try:
        post_amo_talks(runner, integration, secret, account, talks)
        runner.drain(timeout=120)
    finally:
        moto.throttle_dynamodb(runner.stack.ref("LeadLedgerTable"), ratio=0)
    assert moto.app.injected > injected  # the throttling really happened
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert sorted(int(lead["source_entity"]["id"]) for lead in leads) == list(talks)
    assert [m for m in runner.take_messages("InboxDeadLetterQueue") if integration.integration_id in m["Body"]] == []


def test_leads_sent_together_and_refused_come_back_and_go_out_once(runner: LocalRunner) -> None:
    """The worker sends a batch's leads in one SendMessageBatch; when the leads queue refuses (a 500), each event
    whose lead did not go out is failed, its claim released, and it comes back: every talk ends as exactly one
    lead, none in the DLQ."""
    from leadbridge.aws.store.ledger import DynamoLedger
    from tests.integration.helpers import add_amo_talks, post_amo_talks

    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    talks = range(7_970, 7_978)
    add_amo_talks(runner, integration, talks)
    moto = runner.stack.moto
    assert moto is not None
    injected = moto.app.injected
    # Refused past the SDK's retries for the first sends, then an outage that ends.
    moto.fail_sends_to("leads.fifo", ratio=1.0, containing=integration.integration_id, times=12)
    try:
        post_amo_talks(runner, integration, secret, account, talks)
        runner.drain(timeout=120, environments=0)
    finally:
        moto.fail_sends_to("leads.fifo", ratio=0)
    assert moto.app.injected > injected  # sends really failed
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert sorted(int(lead["source_entity"]["id"]) for lead in leads) == list(talks)
    assert [m for m in runner.take_messages("InboxDeadLetterQueue") if integration.integration_id in m["Body"]] == []
    ledger = DynamoLedger(runner.stack.ref("LeadLedgerTable"), 1)
    keys = [f"amocrm:{account}:talk:{talk}" for talk in talks]
    assert ledger.finished(keys) == set(keys)

"""Backfill of a 30-day period, both CRMs: every conversation of the period once, resumed after a crash half-way,
within its share of the CRM's limit, with live webhooks flowing while it runs."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from leadbridge.contract.integration import Integration
from leadbridge_local.runner import LocalRunner
from tests.conftest import load_event
from tests.integration.helpers import (
    add_amo_talks,
    bitrix_fields,
    dead_jobs,
    integration_status,
    new_amo_integration,
    new_bitrix_integration,
    post_amo_talks,
    sample_body,
)
from tests.integration.test_bitrix24_pipeline import seed_lead

DAY = 86_400


def sample_period() -> tuple[int, int, dict[str, Any]]:
    """The sample's 30-day period, moved whole days forward when the calendar has left it outside the ledger's
    memory (90 days by default: a backfill may not reach further back)."""
    body: dict[str, Any] = json.loads(load_event("integrations_api", "post_backfill.json")["body"])
    start = int(datetime.fromisoformat(body["from"]).timestamp())
    end = int(datetime.fromisoformat(body["to"]).timestamp())
    assert end - start == 30 * DAY
    shift = max(0, (int(time.time()) - 60 * DAY - start) // DAY) * DAY
    start, end = start + shift, end + shift
    body = {"from": datetime.fromtimestamp(start, UTC).isoformat(), "to": datetime.fromtimestamp(end, UTC).isoformat()}
    return start, end, body


def start_backfill(runner: LocalRunner, integration: Integration, body: dict[str, Any]) -> httpx.Response:
    path = f"/integrations/{integration.integration_id}/backfill"
    return runner.post(path, json.dumps(body), content_type="application/json")


def progress(runner: LocalRunner, integration: Integration) -> dict[str, Any]:
    answer = runner.get(f"/integrations/{integration.integration_id}/backfill")
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()
    return found


def crash_after(runner: LocalRunner, integration: Integration, sends: int) -> None:
    """The backfill run dies half-way: the inbox refuses it after ``sends`` messages (the function fails)."""
    runner.stack.moto.fail_sends_to("inbox.fifo", ratio=1.0, containing=integration.integration_id, after=sends)
    try:
        runner.run_schedule("backfill")  # the step's job fails each time it is retried, then is dead-lettered
    finally:
        runner.stack.moto.fail_sends_to("inbox.fifo", ratio=0)
    failure = integration_status(runner, integration.integration_id)["last_job_failure"]
    assert (failure["kind"], failure["reason"].split(":")[0]) == ("backfill", "InboxWriteError")
    assert dead_jobs(runner, integration.integration_id)


def run_in_background(runner: LocalRunner) -> threading.Thread:
    thread = threading.Thread(target=runner.run_schedule, args=("backfill",), daemon=True)
    thread.start()
    return thread


def ours(runner: LocalRunner, integration: Integration) -> list[dict[str, Any]]:
    return [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]


def test_amocrm_backfill_of_30_days(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    start, _end, body = sample_period()
    in_period = list(range(7_001, 7_013))  # one every 2.5 days
    started = {talk: start + 3_600 + i * (5 * DAY // 2) for i, talk in enumerate(in_period)}
    for talk in in_period:
        add_amo_talks(runner, integration, [talk], created_at=started[talk])
        for n in range(1, 10):  # later messages: 120 events, two pages; each talk on several
            runner.amocrm.add_chat_message_event(integration.account_name, talk, started[talk] + n * 600)
    earlier = 7_050  # began before the period and went on inside it: not the period's conversation
    add_amo_talks(runner, integration, [earlier], created_at=start - 2 * DAY)
    runner.amocrm.add_chat_message_event(integration.account_name, earlier, start + DAY)
    delivered = in_period[:3]  # their webhooks came in at the time
    post_amo_talks(runner, integration, secret, account, delivered)
    runner.drain(timeout=60)
    runner.take_leads()

    answer = start_backfill(runner, integration, body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "running"
    assert start_backfill(runner, integration, body).status_code == 409  # one at a time

    requests_before = len(runner.amocrm.request_log)
    began = time.monotonic()
    crash_after(runner, integration, sends=4)
    crashed = progress(runner, integration)
    assert crashed["state"] == "running"
    assert (crashed["total_final"], crashed["done"], crashed["already_known"]) == (True, 4, 3)
    # Within its share: its own reads (events pages, talks) were paced for the worker's reads to come as well.
    own = [r for r in runner.amocrm.request_log[requests_before:] if integration.account_name in r[1]]
    assert len(own) / (time.monotonic() - began) <= 0.25 * 7

    live = [7_101, 7_102, 7_103]
    add_amo_talks(runner, integration, live, created_at=int(time.time()) - 120)
    background = run_in_background(runner)
    post_amo_talks(runner, integration, secret, account, live)
    runner.drain(timeout=60)
    flowing = ours(runner, integration)
    assert background.is_alive(), "the backfill should still be running"
    assert {int(lead["source_entity"]["id"]) for lead in flowing} >= set(live)  # live leads did not wait
    background.join(timeout=120)
    runner.drain(timeout=60)
    leads = flowing + ours(runner, integration)

    finished = progress(runner, integration)
    assert finished["state"] == "done"
    assert (finished["total"], finished["done"], finished["already_known"], finished["errors"]) == (12, 9, 3, 0)
    emitted = sorted(int(lead["source_entity"]["id"]) for lead in leads)
    assert emitted == sorted([*in_period[3:], *live])  # once each; the delivered ones were not emitted again
    imported = [lead for lead in leads if lead["backfill"] is not None]
    assert sorted(int(lead["source_entity"]["id"]) for lead in imported) == in_period[3:]
    for lead in imported:
        talk = int(lead["source_entity"]["id"])
        assert lead["backfill"]["id"] == finished["backfill_id"]
        assert lead["created_at"] == datetime.fromtimestamp(started[talk], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert datetime.fromisoformat(lead["received_at"]).timestamp() > time.time() - 600  # the import time
    status = runner.get(f"/integrations/{integration.integration_id}/status").json()
    assert status["backfill"]["state"] == "done"


def test_bitrix24_backfill_of_30_days(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    start, end, body = sample_period()
    portal = runner.bitrix24.portals[integration.crm_domain]
    in_period = list(range(41_001, 41_008))
    for i, lead_id in enumerate(in_period):
        created = datetime.fromtimestamp(start + 600 + i * 4 * DAY, UTC).astimezone().isoformat(timespec="seconds")
        seed_lead(runner, integration.crm_domain, lead_id, created=created)
    outside = 41_050
    seed_lead(runner, integration.crm_domain, outside, created=datetime.fromtimestamp(end + 60, UTC).isoformat())
    web_form = 41_060  # in the period, but no chat: the worker leaves it out
    portal.leads[web_form] = {
        "ID": str(web_form),
        "SOURCE_ID": "WEB",
        "DATE_CREATE": datetime.fromtimestamp(start + DAY, UTC).isoformat(),
    }
    url = f"/hooks/bitrix24/{integration.integration_id}/{secret}"

    def post(lead_id: int) -> None:
        fields = bitrix_fields(integration, member, token, lead_id)
        hook = sample_body("bitrix_hook", "lead_telegram_without_session.json", **fields)
        assert runner.post(url, hook).status_code == 200

    post(in_period[0])  # delivered at the time
    runner.drain(timeout=60)
    runner.take_leads()
    assert start_backfill(runner, integration, body).status_code == 202

    crash_after(runner, integration, sends=3)
    crashed = progress(runner, integration)
    assert (crashed["state"], crashed["total"], crashed["total_final"]) == ("running", 8, True)
    assert crashed["done"] + crashed["already_known"] == 4

    live = 41_100
    seed_lead(runner, integration.crm_domain, live, created=datetime.now(UTC).isoformat(timespec="seconds"))
    background = run_in_background(runner)
    post(live)
    runner.drain(timeout=60)
    flowing = ours(runner, integration)
    assert background.is_alive(), "the backfill should still be running"
    assert live in {int(lead["source_entity"]["id"]) for lead in flowing}
    background.join(timeout=120)
    runner.drain(timeout=60)
    leads = flowing + ours(runner, integration)

    finished = progress(runner, integration)
    assert (finished["state"], finished["total"], finished["done"], finished["already_known"]) == ("done", 8, 7, 1)
    emitted = sorted(int(lead["source_entity"]["id"]) for lead in leads)
    assert emitted == sorted([*in_period[1:], live])  # the web form lead was read and left out; nothing twice
    assert all(lead["backfill"] is not None for lead in leads if int(lead["source_entity"]["id"]) != live)


def test_backfill_period_is_checked(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    _, _, body = sample_period()
    backwards = {"from": body["to"], "to": body["from"]}
    answer = start_backfill(runner, integration, backwards)
    assert answer.status_code == 422
    too_long = {"from": "2024-01-01T00:00:00Z", "to": body["to"]}
    assert start_backfill(runner, integration, too_long).status_code == 422
    naive = {"from": "2026-10-01T00:00:00", "to": body["to"]}
    assert start_backfill(runner, integration, naive).status_code == 422
    year_one = {"from": "0001-01-01T00:00:00+14:00", "to": "0001-01-02T00:00:00+14:00"}
    refused = start_backfill(runner, integration, year_one)
    assert refused.status_code == 422
    assert "2000-01-01" in refused.text
    assert runner.get(f"/integrations/{integration.integration_id}/backfill").status_code == 404
    assert start_backfill(runner, integration, body).status_code == 202
    path = f"{runner.base_url}/integrations/{integration.integration_id}/backfill"
    assert httpx.delete(path, timeout=30).json()["state"] == "cancelled"
    assert start_backfill(runner, integration, body).status_code == 202  # a new one may start after
    assert httpx.delete(path, timeout=30).json()["state"] == "cancelled"


def test_a_backfill_restarted_while_its_run_lists_imports_every_conversation_once(runner: LocalRunner) -> None:
    """Cancelled and started again while a run of the old one was still listing: the old run's late writes can
    neither leave items behind nor hide keys from the new backfill, which imports all of them."""
    from leadbridge.aws.store.backfills import DynamoBackfills
    from leadbridge.contract.backfill_job import BackfillJob

    integration, _, _ = new_amo_integration(runner)
    store = DynamoBackfills(runner.stack.ref("IntegrationsTable"))
    now = int(time.time())
    old = BackfillJob.new(integration.integration_id, "amocrm", now - 30 * DAY, now, now)
    assert store.start(old)
    keys = [f"talk:{n}" for n in range(1, 31)]
    assert store.add_pending(old, keys[:10], now) == 10  # the old run has listed a first page

    assert store.finish(old, "cancelled", now)  # DELETE, then POST again, while the old run still lists
    new = BackfillJob.new(integration.integration_id, "amocrm", now - 30 * DAY, now, now)
    assert store.start(new)
    assert store.add_pending(old, keys[10:], now) is None  # the old run's next page: refused, it stops
    store.clear_others(new)  # the new run starts
    assert store.add_pending(new, keys, now) == 30
    assert sorted(store.pending(new, 100)) == sorted(keys)
    for key in keys:
        assert store.settle(new, key, {"done": 1})
    assert store.pending(new, 100) == []
    job = store.get(integration.integration_id)
    assert job is not None
    # total grows with the pending items it counts (in their transactions), never apart from them
    assert (job.backfill_id, job.total, job.done) == (new.backfill_id, 30, 30)


def test_a_stored_backfill_with_an_impossible_period_stops_no_other(runner: LocalRunner) -> None:
    """A job stored before periods were checked (year 0 in UTC) is cancelled with its reason; the other
    integration's backfill still runs in the same pass."""
    from leadbridge.aws.store.backfills import DynamoBackfills
    from leadbridge.contract.backfill_job import BackfillJob

    broken, _, _ = new_amo_integration(runner)
    fine, _secret, _account = new_amo_integration(runner)
    store = DynamoBackfills(runner.stack.ref("IntegrationsTable"))
    now = int(time.time())
    assert store.start(BackfillJob.new(broken.integration_id, "amocrm", -62_135_647_200, -62_135_560_800, now))
    start, _end, body = sample_period()
    add_amo_talks(runner, fine, [7_301], created_at=start + DAY)
    assert start_backfill(runner, fine, body).status_code == 202
    runner.run_schedule("backfill")
    job = store.get(broken.integration_id)
    assert job is not None
    assert job.state == "cancelled"
    assert (job.last_error or "").startswith("invalid period")
    assert progress(runner, fine)["done"] + progress(runner, fine)["already_known"] >= 0
    assert progress(runner, fine)["total"] >= 1  # the fine one listed in the same run


def test_a_talk_refused_to_the_user_does_not_stop_a_backfill(runner: LocalRunner) -> None:
    """One talk of the period answers 403 «Недостаточно прав»: it is skipped and counted, the rest come in."""
    integration, _, _ = new_amo_integration(runner, amo_note_enabled=False)
    start, _end, body = sample_period()
    talks = list(range(7_201, 7_206))
    for i, talk in enumerate(talks):
        add_amo_talks(runner, integration, [talk], created_at=start + DAY + i * DAY)
    runner.amocrm.accounts[integration.account_name].denied_paths = {"/api/v4/talks/7202"}
    assert start_backfill(runner, integration, body).status_code == 202
    for _ in range(3):
        runner.run_schedule("backfill")
        if progress(runner, integration)["state"] == "done":
            break
    finished = progress(runner, integration)
    assert (finished["state"], finished["total"], finished["done"], finished["errors"]) == ("done", 5, 4, 1)
    runner.drain(timeout=60)
    assert sorted(int(lead["source_entity"]["id"]) for lead in ours(runner, integration)) == [7_201, *talks[2:]]


def test_a_period_older_than_the_ledgers_memory_is_refused_saying_why(runner: LocalRunner) -> None:
    """The ledger forgets after LedgerRetentionDays (90 by default): a backfill reaching further back would emit
    conversations again that went out long ago, so it is refused with how to get it."""
    integration, _, _ = new_amo_integration(runner, amo_note_enabled=False)
    now = int(time.time())
    old = {
        "from": datetime.fromtimestamp(now - 120 * DAY, UTC).isoformat(),
        "to": datetime.fromtimestamp(now - 100 * DAY, UTC).isoformat(),
    }
    answer = start_backfill(runner, integration, old)
    assert answer.status_code == 422, answer.text
    assert "LedgerRetentionDays" in answer.text
    recent = {
        "from": datetime.fromtimestamp(now - 80 * DAY, UTC).isoformat(),
        "to": datetime.fromtimestamp(now - 60 * DAY, UTC).isoformat(),
    }
    assert start_backfill(runner, integration, recent).status_code == 202


def test_a_step_that_dies_after_listing_leaves_the_total_right(runner: LocalRunner) -> None:
    """The pending items and the job's total are written together: a step that dies before it moves the cursor
    (here: every write of the cursor refused) leaves a total that counts what is pending, never 0."""
    integration, _, _ = new_amo_integration(runner, amo_note_enabled=False)
    start, _end, body = sample_period()
    talks = list(range(7_301, 7_305))
    for i, talk in enumerate(talks):
        add_amo_talks(runner, integration, [talk], created_at=start + DAY + i * DAY)
    assert start_backfill(runner, integration, body).status_code == 202
    table = runner.stack.ref("IntegrationsTable")
    moto = runner.stack.moto
    moto.throttle_dynamodb(table, ratio=1.0, operations=("UpdateItem",), containing="listing_done")
    try:
        runner.run_schedule("backfill")  # the step's job fails each time it is retried, then is dead-lettered
    finally:
        moto.throttle_dynamodb(table, ratio=0)
    crashed = progress(runner, integration)
    assert (crashed["state"], crashed["total"], crashed["done"]) == ("running", 4, 0)
    for _ in range(3):
        runner.run_schedule("backfill")
        if progress(runner, integration)["state"] == "done":
            break
    finished = progress(runner, integration)
    assert (finished["state"], finished["total"], finished["done"]) == ("done", 4, 4)


def test_pending_reads_past_a_page_of_another_backfills_leftovers(runner: LocalRunner) -> None:
    """DynamoDB applies Limit before the filter: 20 leftovers of an older backfill sorted first make the first page
    come back empty with more behind it. pending() follows the pages; empty means none is left."""
    from leadbridge.aws.store.backfills import DynamoBackfills, pending_pk
    from leadbridge.contract.backfill_job import BackfillJob

    integration, _, _ = new_amo_integration(runner)
    table = runner.stack.ref("IntegrationsTable")
    store = DynamoBackfills(table)
    now = int(time.time())
    job = BackfillJob.new(integration.integration_id, "amocrm", now - 30 * DAY, now, now)
    assert store.start(job)
    dynamodb = runner.stack.client("dynamodb")
    for n in range(20):
        item = {"pk": {"S": pending_pk(integration.integration_id)}, "sk": {"S": f"a-old:{n:02}"}}
        dynamodb.put_item(TableName=table, Item={**item, "backfill_id": {"S": "older"}})
    assert store.add_pending(job, ["talk:1", "talk:2"], now) == 2
    assert store.pending(job, 5) == ["talk:1", "talk:2"]
    for key in ("talk:1", "talk:2"):
        assert store.settle(job, key, {"done": 1})
    assert store.pending(job, 5) == []

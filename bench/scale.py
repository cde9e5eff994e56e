"""``make bench-scale``: scheduled work for thousands of integrations on one stack (not a test; not in CI).

Runs the Lambda-like local runner (real handlers in ``ENVIRONMENTS`` execution-environment processes, real SQS and
DynamoDB in moto, the fake CRMs answering every request after 150-300 ms, as the CRMs' hosts do from AWS, each
account's rate limit enforced) with ``AMO + BITRIX`` integrations, of which 2 % are portals that fail every request
(``failing``) or answer only after the client's timeout (``stalling``). Writes ``bench/scale-results.json``:

- ``sweep_coverage``: healthy integrations whose sweep listed its window to the end in one run of the recovery
  schedule, over the healthy active integrations (the failing ones are counted apart, in ``sweep_failed_isolated``:
  each must end as a failed job in the jobs DLQ while every other completes); ``sweep_run_seconds`` beside the
  schedule's period;
- ``projected_sweep_period_s``: the period one sweep of 10,000 and 100,000 integrations takes at the template's
  default ``ScheduledJobsConcurrency``, from the measured mean job time (every job, the failing ones included);
- ``token_calls_per_day``: token-endpoint calls a day for 10,000 amoCRM and 10,000 Bitrix24 integrations, before
  (the refresher sized to the access token, a 15-minute sweep forcing each portal's hourly refresh) and after (the
  upkeep sized to the refresh token, the idle-portal rule), from a day simulated in 15-minute steps on the same
  rules the code applies (``flows.recovery.sweep.idle_rule_applies``, the token lifetimes and margins);
- ``backfills_in_parallel``: 20 backfills started at once (20 conversations each), and how many had listed their
  period and how many had imported conversations within one minute;
- ``limit_violations``: 429 / 503 answers the fakes gave (the shared budgets must keep them at 0).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SMOKE = os.environ.get("BENCH_SMOKE") == "1"  # tiny sizes, into out/bench-smoke/ (see bench/run.py)
AMO = int(os.environ.get("BENCH_AMO", "10" if SMOKE else "1000"))
BITRIX = int(os.environ.get("BENCH_BITRIX", "10" if SMOKE else "1000"))
ENVIRONMENTS = int(os.environ.get("BENCH_ENVIRONMENTS", "2" if SMOKE else "20"))
BROKEN_SHARE = 0.02
LATENCY = (0.15, 0.30)
SWEEP_PERIOD_S = 900  # the template's default SweepSchedule
BACKFILLS = 2 if SMOKE else 20
DAY = 86_400
SECRETS: dict[str, str] = {}  # integration id -> its webhook URL's secret


def log(message: str) -> None:
    print(message, file=sys.__stdout__, flush=True)


def template_default(parameter: str) -> int:
    from leadbridge_local.template import load_template

    return int(load_template()["Parameters"][parameter]["Default"])


def seed(runner: Any) -> tuple[list[Any], set[str], set[str]]:
    """The integrations, connected; every 10th has a conversation no webhook announced. Returns them, and the
    integration ids of the failing and the stalling portals."""
    from leadbridge.contract.integration import Integration, SessionField, TrafficTarget
    from leadbridge_local.seed import connect_amocrm, connect_bitrix24, install_integration

    now = int(time.time())
    integrations: list[Any] = []
    for n in range(AMO):
        integration = Integration(
            integration_id=f"amo-{n:05d}",
            crm="amocrm",
            crm_domain=f"scale{n:05d}.amocrm.ru",
            client_id=f"client-{n:05d}",
            client_secret=f"client-secret-{n:05d}-scale",
            session_field=SessionField(field_id=778899, entity="lead"),
            default_target=TrafficTarget(campaign_id=1001),
        )
        SECRETS[integration.integration_id] = install_integration(runner, integration)
        connect_amocrm(runner, integration, 30_000_000 + n)
        if n % 10 == 0:
            runner.amocrm.add_talk(
                integration.account_name, 900_000 + n, lead_id=9_000_000 + n, contact_id=90_000_000 + n,
                origin="telegram", created_at=now - 600, lead={}, contact={"name": "Ann"},
            )  # fmt: skip
        integrations.append(integration)
    for n in range(BITRIX):
        integration = Integration(
            integration_id=f"b24-{n:05d}",
            crm="bitrix24",
            crm_domain=f"scale{n:05d}.bitrix24.ru",
            client_id=f"local.scale{n:05d}",
            client_secret=f"client-secret-{n:05d}-scale",
            traffic_type="source",
            default_target=TrafficTarget(source_id=501, site_id=601),
        )
        SECRETS[integration.integration_id] = install_integration(
            runner, integration, application_token=f"app-token-{n:05d}"
        )
        connect_bitrix24(runner, integration, f"member{n:05d}")
        if n % 10 == 0:
            created = datetime.fromtimestamp(now - 600, UTC).isoformat(timespec="seconds")
            runner.bitrix24.add_open_lines_lead(integration.crm_domain, 500_000 + n, created=created)
        integrations.append(integration)
    broken = max(2, round(len(integrations) * BROKEN_SHARE))
    # Spread over both CRMs: every (len / broken)-th integration, alternately failing and stalling.
    step = len(integrations) // broken
    chosen = [integrations[i * step + 7] for i in range(broken)]
    failing = {i.integration_id for i in chosen[0::2]}
    stalling = {i.integration_id for i in chosen[1::2]}
    for integration in chosen:
        hosts = (
            runner.crm_server.failing_hosts
            if integration.integration_id in failing
            else runner.crm_server.stalling_hosts
        )
        hosts.add(integration.crm_domain)
    return integrations, failing, stalling


def sweep_figures(runner: Any, integrations: list[Any], failing: set[str], stalling: set[str]) -> dict[str, Any]:
    from leadbridge.aws.store.integrations import DynamoIntegrations

    statuses = DynamoIntegrations(runner.stack.ref("IntegrationsTable"))
    violations_before = runner.amocrm.counts["limit_violations"] + runner.bitrix24.counts["limit_violations"]
    planned_at = int(time.time())
    started = time.monotonic()
    jobs = runner.run_schedule("recovery", timeout=900)
    elapsed = time.monotonic() - started
    broken = failing | stalling
    healthy = [i for i in integrations if i.integration_id not in broken]
    completed = failed_isolated = 0
    for integration in integrations:
        status = statuses.status(integration.integration_id)
        swept = int(status.get("sweep_finished_at") or 0) >= planned_at
        if integration.integration_id in broken:
            failed_isolated += (not swept) and status.get("last_job_failure", {}).get("kind") == "sweep"
        else:
            completed += swept
    dead = runner.take_messages("JobsDeadLetterQueue")
    dead_ids = {json.loads(m["Body"]).get("integration_id") for m in dead}
    durations = runner.invocation_seconds.get("ScheduledJobsFunction", [])
    mean_job = statistics.fmean(durations)
    concurrency = template_default("ScheduledJobsConcurrency")

    def period(n: int) -> float:
        return round(n * mean_job / concurrency, 1)

    return {
        "integrations": len(integrations),
        "environments": ENVIRONMENTS,
        "crm_latency_s": list(LATENCY),
        "sweep_run_seconds": round(elapsed, 1),
        "sweep_schedule_period_s": SWEEP_PERIOD_S,
        "sweep_job_records": jobs,
        "sweep_coverage": round(completed / len(healthy), 4),
        "sweep_completed": completed,
        "sweep_healthy": len(healthy),
        "sweep_failed_isolated": {
            "broken_portals": len(broken),
            "ended_as_failed_jobs": int(failed_isolated),
            "in_jobs_dlq": len(dead_ids & broken),
            "healthy_in_jobs_dlq": len(dead_ids - broken),
        },
        "job_seconds_mean": round(mean_job, 3),
        "job_seconds_p50": round(statistics.median(durations), 3),
        "job_seconds_p99": round(sorted(durations)[int(0.99 * (len(durations) - 1))], 3),
        "scheduled_jobs_concurrency": concurrency,
        "projected_sweep_period_s": {"10000": period(10_000), "100000": period(100_000)},
        "concurrency_for_100000_within_period": int(-(-100_000 * mean_job // SWEEP_PERIOD_S)),
        "limit_violations": runner.amocrm.counts["limit_violations"]
        + runner.bitrix24.counts["limit_violations"]
        - violations_before,
    }


def backfill_figures(runner: Any, integrations: list[Any], broken: set[str]) -> dict[str, Any]:
    from leadbridge.aws.store.backfills import DynamoBackfills

    now = int(time.time())
    chosen = [i for i in integrations if i.crm == "amocrm" and i.integration_id not in broken][: BACKFILLS // 2]
    chosen += [i for i in integrations if i.crm == "bitrix24" and i.integration_id not in broken][: BACKFILLS // 2]
    for k, integration in enumerate(chosen):
        for m in range(20):  # 20 conversations of the last month each, none ever announced
            created_at = now - (m + 2) * DAY
            if integration.crm == "amocrm":
                runner.amocrm.add_talk(
                    integration.account_name, 700_000 + k * 100 + m, lead_id=7_000_000 + k * 100 + m,
                    contact_id=70_000_000 + k * 100 + m, origin="telegram", created_at=created_at, lead={},
                    contact={"name": "Ann"},
                )  # fmt: skip
            else:
                created = datetime.fromtimestamp(created_at, UTC).isoformat(timespec="seconds")
                runner.bitrix24.add_open_lines_lead(integration.crm_domain, 600_000 + k * 100 + m, created=created)
    period = {
        "from": datetime.fromtimestamp(now - 30 * DAY, UTC).isoformat(),
        "to": datetime.fromtimestamp(now, UTC).isoformat(),
    }
    for integration in chosen:
        answer = runner.post(
            f"/integrations/{integration.integration_id}/backfill", json.dumps(period), content_type="application/json"
        )
        assert answer.status_code == 202, answer.text
    started = time.monotonic()
    steps = threading.Thread(target=runner.run_schedule, args=("backfill",), kwargs={"timeout": 300}, daemon=True)
    steps.start()
    listed: dict[str, float] = {}
    imported: dict[str, float] = {}
    store = DynamoBackfills(runner.stack.ref("IntegrationsTable"))  # the item GET .../backfill reads, read directly
    while time.monotonic() - started < 60 and len(imported) < len(chosen):
        for integration in chosen:
            job = store.get(integration.integration_id)
            at = time.monotonic() - started
            if job is not None and job.total > 0:
                listed.setdefault(integration.integration_id, at)
            if job is not None and job.done + job.already_known > 0:
                imported.setdefault(integration.integration_id, at)
        time.sleep(1.0)
    steps.join(300)

    def until_all(found: dict[str, float]) -> float | None:
        return round(max(found.values()), 1) if len(found) == len(chosen) else None

    return {
        "backfills_in_parallel": {
            "started": len(chosen),
            "listing_within_60s": len(listed),
            "importing_within_60s": len(imported),
            "seconds_until_all_listing": until_all(listed),
            "seconds_until_all_importing": until_all(imported),
        }
    }


BURST_INTEGRATIONS = int(os.environ.get("BENCH_BURST_INTEGRATIONS", "4" if SMOKE else "200"))
BURST_CHATS = 2 if SMOKE else 10
TENANT_SHARE = os.environ.get("BENCH_TENANT_WEBHOOKS_PER_SECOND", "3")
STORM = int(os.environ.get("BENCH_STORM", "40" if SMOKE else "2000"))
COST_PASS = 4 if SMOKE else 50  # integrations per CRM for the AWS-requests-per-lead pass (2 chats each)
ONE_INTEGRATION_PASS = 2 if SMOKE else 5  # integrations per CRM for the pass of one-integration batches (10 each)
# List prices, us-east-1, December 2026 (on-demand): SQS FIFO $0.50 per million requests; DynamoDB on-demand $0.625
# per million write request units and $0.125 per million read request units (as the local AWS's ``billed_units``
# counts them: an item of a batch read is a unit, a transaction's item two; the items are under 1 KB written / 4 KB
# read); SQS per 64 KiB of payload; Secrets Manager $0.05 per 10,000 API calls. Lambda is not included.
PRICE_PER_REQUEST = {"sqs": 0.50e-6, "secretsmanager": 5.0e-6}
DYNAMODB_WRITE, DYNAMODB_READ = 0.625e-6, 0.125e-6
READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem"})
# The floor per lead: the inbox send, its receive and delete, one ledger claim, the leads send; receives, deletes
# and leads sends amortized over a batch of 10.
FLOOR = {"sqs:SendMessage (inbox)": 1.0, "sqs:ReceiveMessage": 0.1, "sqs:DeleteMessageBatch": 0.1}
FLOOR |= {"dynamodb:UpdateItem (ledger claim)": 1.0, "sqs:SendMessageBatch (leads)": 0.1}


def amo_talk_body(integration: Any, talk: int) -> bytes:
    from urllib.parse import urlencode

    return urlencode(
        {
            "talk[add][0][talk_id]": str(talk),
            "talk[add][0][entity_id]": str(talk * 10),
            "talk[add][0][entity_type]": "lead",
            "talk[add][0][contact_id]": str(talk * 100),
            "talk[add][0][origin]": "telegram",
            "account[subdomain]": integration.account_name,
            "account[id]": str(30_000_000 + int(integration.integration_id.split("-")[1])),
        }
    ).encode()


def bitrix_lead_body(integration: Any, lead_id: int) -> bytes:
    from urllib.parse import urlencode

    return urlencode(
        {
            "event": "ONCRMLEADADD",
            "data[FIELDS][ID]": str(lead_id),
            "auth[domain]": integration.crm_domain,
            "auth[member_id]": f"member{integration.integration_id.split('-')[1]}",
            "auth[application_token]": f"app-token-{integration.integration_id.split('-')[1]}",
        }
    ).encode()


def new_chat(runner: Any, integration: Any, number: int) -> tuple[str, bytes]:
    """A chat in the integration's fake CRM and the webhook that announces it: (hook path, body)."""
    now = int(time.time())
    if integration.crm == "amocrm":
        runner.amocrm.add_talk(
            integration.account_name, number, lead_id=number * 10, contact_id=number * 100, origin="telegram",
            created_at=now - 60, lead={}, contact={"name": "Ann"},
        )  # fmt: skip
        path = f"/hooks/amocrm/{integration.integration_id}/{SECRETS[integration.integration_id]}/"
        return path, amo_talk_body(integration, number)
    created = datetime.fromtimestamp(now - 60, UTC).isoformat(timespec="seconds")
    runner.bitrix24.add_open_lines_lead(integration.crm_domain, number, created=created)
    path = f"/hooks/bitrix24/{integration.integration_id}/{SECRETS[integration.integration_id]}"
    return path, bitrix_lead_body(integration, number)


def cost(requests: dict[str, int], leads: int) -> float:
    dollars = 0.0
    for operation, count in requests.items():
        service, _, name = operation.partition(":")
        if service == "dynamodb":
            dollars += count * (DYNAMODB_READ if name in READS else DYNAMODB_WRITE)
        else:
            dollars += count * PRICE_PER_REQUEST.get(service, 0.0)
    return round(dollars / leads * 1_000_000, 2)


def requests_per_lead(runner: Any, chosen: list[Any], first_number: int, chats: int = 2) -> dict[str, Any]:
    """``chats`` chats on each integration, posted and drained with nothing else running: the local AWS's request
    log before and after, per lead, by operation. Two chats on each of many integrations: batches that mix ten
    leads of five integrations; ten on one integration at a time (each drained before the next): batches of one
    integration, as the floor is counted. The poller's side is Lambda's: one receive and one batch delete per batch
    it delivers (the local poller's own polls, the harness's reads of the leads queue and the TTL sweeper's scans
    are not the product's and are left out). The cost is priced on what AWS bills (``billed_units``: items of a
    batch read or a transaction, 64 KiB of an SQS payload), not on requests."""
    app = runner.stack.moto.app
    before, billed_before = Counter(app.requests), Counter(app.billed)
    batches_before = runner.invocations.get("LeadWorkerFunction", 0)
    rounds = [chosen] if chats < 10 else [[one] for one in chosen]  # ten chats: one integration a batch
    for k, group in enumerate(rounds):
        posts = [
            new_chat(runner, i, first_number + (k + j) * 100 + c) for j, i in enumerate(group) for c in range(chats)
        ]
        for path, body in posts:
            assert runner.post(path, body).status_code == 200
        runner.drain(timeout=300)
    batches = runner.invocations.get("LeadWorkerFunction", 0) - batches_before
    leads = len(runner.take_leads())
    poller = {"sqs:ReceiveMessage (poller: one a batch)": batches, "sqs:DeleteMessageBatch (poller)": batches}

    def product_of(spent: Counter[str]) -> dict[str, int]:
        return {op: n for op, n in spent.items() if op not in HARNESS_OPERATIONS} | poller

    product = product_of(Counter(app.requests) - before)
    product_billed = product_of(Counter(app.billed) - billed_before)
    floor = round(sum(FLOOR.values()), 2)
    per_lead = sum(product.values()) / max(leads, 1)
    return {
        "leads": leads,
        "chats_per_integration": chats,
        "worker_batches": batches,
        "aws_requests_per_lead": round(per_lead, 2),
        "aws_requests_floor": floor,
        "ratio_to_floor": round(per_lead / floor, 2),
        "cost_per_million_leads_usd": cost(product_billed, leads),
        "floor_cost_per_million_leads_usd": round((floor - 1.0) * 0.50 + 1.0 * 0.625, 2),
        "by_operation": {op: round(n / max(leads, 1), 2) for op, n in sorted(product.items())},
        "billed_units_by_operation": {op: round(n / max(leads, 1), 2) for op, n in sorted(product_billed.items())},
    }


# Not the product's: the local poller's polls and deletes (replaced by Lambda's, one each a batch), queue attribute
# reads, the TTL sweeper's scans.
HARNESS_OPERATIONS = frozenset(
    {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:DeleteMessageBatch", "sqs:GetQueueAttributes", "dynamodb:Scan"}
)


def burst_figures(runner: Any, integrations: list[Any], broken: set[str]) -> dict[str, Any]:
    """10 chats on each of 200 integrations at once, while one more integration storms 2,000 webhooks."""
    from concurrent.futures import ThreadPoolExecutor

    runner.drain(timeout=300)  # what the sweep and the backfills enqueued is not part of these figures
    runner.take_leads()
    healthy = [i for i in integrations if i.integration_id not in broken]
    amo = [i for i in healthy if i.crm == "amocrm"][BACKFILLS:]  # not the backfills' (their chats are old)
    b24 = [i for i in healthy if i.crm == "bitrix24"][BACKFILLS:]
    figures: dict[str, Any] = {
        "aws_requests": {  # batches of five integrations' leads (two each)
            "amocrm": requests_per_lead(runner, amo[-COST_PASS:], 8_000_000),
            "bitrix24": requests_per_lead(runner, b24[-COST_PASS:], 8_000_000),
        },
        "aws_requests_one_integration_batches": {  # batches of ten leads of one integration, as the floor counts
            "amocrm": requests_per_lead(
                runner, amo[-COST_PASS - ONE_INTEGRATION_PASS : -COST_PASS], 8_500_000, chats=10
            ),
            "bitrix24": requests_per_lead(
                runner, b24[-COST_PASS - ONE_INTEGRATION_PASS : -COST_PASS], 8_500_000, chats=10
            ),
        },
    }
    quiet = amo[: BURST_INTEGRATIONS // 2] + b24[: BURST_INTEGRATIONS // 2]
    storm = amo[BURST_INTEGRATIONS // 2]
    quiet_posts = [
        (i, number, new_chat(runner, i, number))
        for k, i in enumerate(quiet)
        for number in range(9_000_000 + k * 100, 9_000_000 + k * 100 + BURST_CHATS)
    ]
    storm_posts = [new_chat(runner, storm, 9_900_000 + n) for n in range(STORM)]
    violations_before = runner.amocrm.counts["limit_violations"] + runner.bitrix24.counts["limit_violations"]
    posted_at: dict[tuple[str, str], float] = {}  # (integration, chat): when its webhook was posted
    quiet_answers: list[int] = []
    storm_answers: list[int] = []

    def post_quiet(item: tuple[Any, int, tuple[str, bytes]]) -> None:
        integration, number, (path, body) = item
        posted_at[(integration.integration_id, str(number))] = time.time()
        quiet_answers.append(runner.post(path, body).status_code)

    def post_storm(item: tuple[str, bytes]) -> None:
        storm_answers.append(runner.post(*item).status_code)

    posting = threading.Event()
    posting.set()

    def keep_draining() -> None:
        """As Lambda's pollers do, for as long as webhooks come (a drain ends whenever the queues are empty)."""
        while posting.is_set():
            runner.drain(timeout=120)
            time.sleep(0.1)

    started = time.time()
    with ThreadPoolExecutor(8) as quiet_pool, ThreadPoolExecutor(8) as storm_pool:
        storm_done = storm_pool.map(post_storm, storm_posts)
        quiet_done = quiet_pool.map(post_quiet, sorted(quiet_posts, key=lambda p: p[2][1]))
        drained = threading.Thread(target=keep_draining, daemon=True)
        drained.start()
        list(quiet_done)
        list(storm_done)
        posting.clear()
        drained.join()
    runner.drain(timeout=300)
    messages = runner.take_messages("LeadsQueue")
    elapsed = max(int(m["Attributes"]["SentTimestamp"]) for m in messages) / 1000 - started
    quiet_ids = {i.integration_id for i in quiet}
    # Each webhook's own time: from its post to its lead in the leads queue (the lead's source entity is the chat).
    delays = sorted(
        int(m["Attributes"]["SentTimestamp"]) / 1000 - posted_at[(lead["integration_id"], lead["source_entity"]["id"])]
        for m in messages
        if (lead := json.loads(m["Body"]))["integration_id"] in quiet_ids
    )
    quiet_leads = len(delays)
    inbox_delay = 0  # the local stack runs with InboxDelaySeconds 0: nothing to subtract
    figures["burst_200_integrations"] = {
        "quiet_integrations": len(quiet),
        "quiet_chats": len(quiet_posts),
        "quiet_leads": quiet_leads,
        "storm_webhooks": len(storm_posts),
        "storm_refused_429": storm_answers.count(429),
        "storm_taken": storm_answers.count(200),
        "leads_per_second": round(len(messages) / elapsed, 1),
        "p99_seconds_less_inbox_delay": round(delays[int(0.99 * (len(delays) - 1))] - inbox_delay, 1)
        if delays
        else None,
        "limit_violations": runner.amocrm.counts["limit_violations"]
        + runner.bitrix24.counts["limit_violations"]
        - violations_before,
        "quiet_refused": sum(1 for status in quiet_answers if status != 200),
        "quiet_answers": {str(k): v for k, v in sorted(Counter(quiet_answers).items())},
        "storm_answers": {str(k): v for k, v in sorted(Counter(storm_answers).items())},
    }
    return figures


def token_calls_per_day() -> dict[str, Any]:
    """A day in 15-minute sweep steps for one integration with no traffic of its own (the case the schedule alone
    pays for), on the code's rules; times 10,000."""
    from leadbridge.crms.amocrm.oauth import IDLE_REFRESH_AFTER_SECONDS as AMO_IDLE
    from leadbridge.crms.bitrix24.oauth import IDLE_REFRESH_AFTER_SECONDS as BITRIX_IDLE
    from leadbridge.crms.token_provider import FRESHNESS_MARGIN_SECONDS as MARGIN
    from leadbridge.flows.recovery.sweep import idle_rule_applies

    idle_minutes = template_default("BitrixIdleSweepMinutes")

    def per_day(access_life: int, before: bool, crm: str) -> float:
        """Token calls a day, averaged over 30 simulated days (after a day of warm-up)."""
        calls, expires_at, last_sweep, refreshed_at = 0, access_life, 0, 0
        for step in range(0, 31 * DAY, SWEEP_PERIOD_S):
            counting = step >= DAY
            if before and crm == "amocrm" and step >= refreshed_at + access_life - 3 * 3600:
                expires_at, refreshed_at = step + access_life, step  # the old refresher, 3 h ahead of expiry
                calls += counting
            live = expires_at - MARGIN > step
            if (
                not before
                and crm == "bitrix24"
                and not live
                and idle_rule_applies(step, last_sweep, False, idle_minutes * 60)
            ):
                continue  # idle portal, token lapsed, swept recently: waits for its idle interval
            if not live:  # the sweep's request refreshes on demand
                expires_at, refreshed_at = step + access_life, step
                calls += counting
            last_sweep = step
        return calls / 30

    amo_before, amo_after = per_day(DAY, True, "amocrm"), per_day(DAY, False, "amocrm")
    b24_before, b24_after = per_day(3600, True, "bitrix24"), per_day(3600, False, "bitrix24")
    return {
        "token_calls_per_day": {
            "amocrm_10000": {"before": round(amo_before * 10_000), "after": round(amo_after * 10_000)},
            "bitrix24_10000": {"before": round(b24_before * 10_000), "after": round(b24_after * 10_000)},
            "note": (
                "integrations with no traffic of their own; the proactive upkeep adds one call per idle grant every "
                f"{AMO_IDLE // DAY} (amoCRM) / {BITRIX_IDLE // DAY} (Bitrix24) days when nothing else used it"
            ),
        }
    }


def main() -> int:
    started = time.monotonic()
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - function logs are not part of the figures
    os.environ.setdefault("LEADBRIDGE_FUNCTION_LOG", os.devnull)  # BENCH: another path keeps the functions' logs
    phases = os.environ.get("BENCH_PHASES", "sweep,backfill,burst").split(",")
    from leadbridge_local.runner import LocalRunner

    results: dict[str, Any] = {}
    # This machine posts a storm at about 25 webhooks a second (the hooks share one process with the local AWS);
    # a real one comes faster. The integrations' share is scaled down with it, so the storm meets it.
    with LocalRunner(environments=ENVIRONMENTS, parameters={"TenantWebhooksPerSecond": TENANT_SHARE}) as runner:
        log(f"seeding {AMO} amoCRM and {BITRIX} Bitrix24 integrations ...")
        integrations, failing, stalling = seed(runner)
        runner.crm_server.latency = LATENCY
        log(f"seeded in {time.monotonic() - started:.0f} s")
        if "sweep" in phases:
            log("one recovery run over all of them ...")
            results |= sweep_figures(runner, integrations, failing, stalling)
            log(f"swept in {results['sweep_run_seconds']} s")
        if "backfill" in phases:
            log(f"{BACKFILLS} backfills at once ...")
            results |= backfill_figures(runner, integrations, failing | stalling)
        if "burst" in phases:
            log(
                f"AWS requests per lead, then {BURST_CHATS} chats on {BURST_INTEGRATIONS} integrations with a storm ..."
            )
            results |= burst_figures(runner, integrations, failing | stalling)
    results |= token_calls_per_day()
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    sys.stdout = sys.__stdout__
    name = os.environ.get("BENCH_OUT", "scale-results.json")  # a phase alone: e.g. scale-sweep-results.json
    out = REPO / ("out/bench-smoke" if SMOKE else "bench") / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make backfill``: start a backfill on a deployed stack and follow its progress (operators).

``python -m leadbridge.flows.recovery.backfill.cli --stack <stack> --integration <id> --from 2026-10-01T00:00:00Z --to ...``
(the integrations table from the stack's resources; AWS credentials from the environment). ``--status`` only
prints the progress of the latest backfill; ``--cancel`` stops it. The stack's scheduled jobs do
the work (every minute); this command only starts it and watches, and may be stopped and run again with
``--status`` at any time.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

import boto3

from leadbridge.aws.stack import stack_table
from leadbridge.aws.store.backfills import DynamoBackfills
from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.contract.backfill_job import BackfillJob, InvalidPeriod
from leadbridge.flows.recovery.backfill.begin import BackfillConflict, begin_backfill

POLL_SECONDS = 15.0


def describe(job: BackfillJob) -> str:
    total = f"{job.total}" if job.listing_done else f"{job.total}+ (still listing)"
    line = (
        f"{job.state}: {job.done} imported, {job.already_known} already known, {job.errors} errors, "
        f"{job.remaining} to go of {total}"
    )
    return line + (f"; last pause: {job.last_error}" if job.last_error and job.state == "running" else "")


def stack_ledger_memory_days(stack: str) -> int:
    """The stack's ``LedgerRetentionDays`` (how far back a backfill may reach), its template default if unset."""
    found = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Parameters", [])
    given = {p.get("ParameterKey"): p.get("ParameterValue") for p in found}
    value = given.get("LedgerRetentionDays") or ""
    return int(value) if value.isdigit() else 90


def instant(text: str) -> int:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone (e.g. 2026-10-01T00:00:00Z)")
    return int(moment.timestamp())


def follow(backfills: DynamoBackfills, integration_id: str, poll: float = POLL_SECONDS) -> BackfillJob | None:
    """Print the progress until the backfill is no longer running."""
    last = ""
    while True:
        job = backfills.get(integration_id)
        if job is None:
            return None
        line = describe(job)
        if line != last:
            print(f"{time.strftime('%H:%M:%S')}  {line}", flush=True)
            last = line
        if job.state != "running":
            return job
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start a backfill on a deployed stack and follow it.")
    parser.add_argument("--stack", required=True, help="CloudFormation stack name")
    parser.add_argument("--integration", required=True, help="integration id")
    parser.add_argument("--from", dest="period_from", type=instant, help="ISO 8601 with a time zone")
    parser.add_argument("--to", dest="period_to", type=instant, help="ISO 8601 with a time zone (exclusive)")
    parser.add_argument("--status", action="store_true", help="only show the latest backfill's progress")
    parser.add_argument("--cancel", action="store_true", help="cancel the running backfill")
    args = parser.parse_args(argv)
    table = stack_table(args.stack)
    backfills = DynamoBackfills(table)
    if args.cancel or args.status:
        job = backfills.get(args.integration)
        if job is None:
            print("no backfill for this integration")
            return 1
        if args.cancel and job.state == "running":
            backfills.finish(job, "cancelled", int(time.time()))
            job = backfills.get(args.integration) or job
        print(describe(job))
        return 0
    if args.period_from is None or args.period_to is None:
        parser.error("give --from and --to (or --status / --cancel)")
    try:
        started = begin_backfill(
            DynamoIntegrations(table),
            backfills,
            args.integration,
            args.period_from,
            args.period_to,
            int(time.time()),
            ledger_memory_days=stack_ledger_memory_days(args.stack),
        )
    except (InvalidPeriod, BackfillConflict) as exc:
        print(f"not started: {exc}", file=sys.stderr)
        return 2
    if started is None:
        print(f"no integration {args.integration!r} in {table}", file=sys.stderr)
        return 2
    print(f"backfill {started.backfill_id} started; the stack's scheduled jobs step it every minute")
    finished = follow(backfills, args.integration)
    return 0 if finished is not None and finished.state == "done" else 1


if __name__ == "__main__":
    sys.exit(main())

"""Schedules -> the jobs queue: one ``expand`` job per shard of the plan the schedule names (scheduled/planner.py)."""

import time
from typing import Any, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.aws.config import SchedulerConfig
from leadbridge.flows.scheduled.jobs import PLANS, Plan
from leadbridge.flows.scheduled.planner import plan
from leadbridge.flows.scheduled.queue import JobsQueue

logger = Logger()
jobs = JobsQueue(SchedulerConfig.from_env().jobs_queue_url)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    which = event.get("plan")
    if which not in PLANS:
        raise ValueError(f"unknown plan {which!r}: the schedule's input must name one of {PLANS}")
    planned = plan(cast(Plan, which), int(time.time()))
    jobs.send_many(planned)
    logger.info("planned", extra={"plan": which, "expand_jobs": len(planned)})
    return {"plan": which, "expand_jobs": len(planned)}

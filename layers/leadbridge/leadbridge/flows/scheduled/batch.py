"""The jobs function's SQS side: each record one job, each job on its own (one job's failure never touches another).

A job that fails is handed back with a growing delay (its own visibility, not the queue's 12 minutes) and, on its
``MAX_ATTEMPTS``-th failure, sent to the jobs DLQ with its reason and acknowledged. A function timeout skips this
(the record reappears after the visibility timeout; the queue's redrive policy is the backstop). Each job works
under the invocation's deadline less ``SAFETY_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.queues import InboxWriteError
from leadbridge.flows.scheduled.jobs import InvalidJob, Job, JobFailed, JobReport
from leadbridge.flows.scheduled.queue import JobDeadLetters, JobsQueue, JobsWriteError
from leadbridge.flows.scheduled.work import Counter, ScheduledWork

logger = Logger(child=True)

MAX_ATTEMPTS = 3
RETRY_DELAYS_SECONDS = (60, 240)  # after the 1st and 2nd failure
SAFETY_SECONDS = 10.0  # left for the last writes and the metrics flush


class FailureLog(Protocol):
    def record_job_failure(self, integration_id: str, kind: str, reason: str, at: int, gave_up: bool) -> None: ...


class JobsBatch:
    def __init__(
        self,
        work: ScheduledWork,
        queue: JobsQueue,
        dead_letters: JobDeadLetters,
        failures: FailureLog,
        count: Counter,
    ) -> None:
        self.work = work
        self.queue = queue
        self.dead_letters = dead_letters
        self.failures = failures
        self.count = count

    def process(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        def time_left() -> float:
            return context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS

        failed: list[dict[str, str]] = []
        for record in event.get("Records", []):
            if not self._one(record, time_left):
                failed.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failed}

    def _one(self, record: dict[str, Any], time_left: Callable[[], float]) -> bool:
        """False: hand the record back for a retry."""
        body = str(record.get("body", ""))
        try:
            job = Job.from_json(body)
        except InvalidJob as exc:
            self.dead_letters.send(body, f"invalid job: {exc}")
            self.count("ScheduledJobDeadLettered")
            return True
        try:
            report = self.work.run(job, time_left)
        except Exception as exc:
            return self._failed(job, record, body, exc)
        self._reported(job, report)
        return True

    def _reported(self, job: Job, report: JobReport) -> None:
        self.count(f"ScheduledJob{report.outcome.capitalize()}")
        logger.info("scheduled job", extra={"job": job.label, "plan": job.plan, **asdict(report)})

    def _failed(self, job: Job, record: dict[str, Any], body: str, exc: Exception) -> bool:
        reason = _reason(exc)
        attempt = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1") or 1)
        logger.warning("scheduled job failed", extra={"job": job.label, "attempt": attempt, "reason": reason})
        self.count("ScheduledJobFailed")
        if job.kind == "sweep":
            self.count("SweepFailed")
        gave_up = attempt >= MAX_ATTEMPTS
        if job.integration_id:
            with suppress(BotoCoreError, ClientError):  # the status is for people; the log and the metric have it
                self.failures.record_job_failure(job.integration_id, job.kind, reason, job.planned_at, gave_up)
        if gave_up:
            self.dead_letters.send(body, f"failed {attempt} times: {reason}")
            self.count("ScheduledJobDeadLettered")
            return True
        with suppress(BotoCoreError, ClientError):  # else it keeps the queue's visibility timeout
            self.queue.delay_retry(record["receiptHandle"], RETRY_DELAYS_SECONDS[min(attempt, 2) - 1])
        return False


def _reason(exc: Exception) -> str:
    """Words for the status, the log and the DLQ: the CRM's or AWS's own message, but only a bug's type (its
    message could hold anything)."""
    if isinstance(exc, JobFailed):
        return str(exc)
    if isinstance(exc, BotoCoreError | ClientError | InboxWriteError | JobsWriteError):
        return f"{type(exc).__name__}: {exc}"[:300]
    return f"unexpected: {type(exc).__name__}"

"""The jobs queue (standard SQS: no order is needed, and the planner's bursts must not meet FIFO's limits) and its
dead-letter queue, where a job that kept failing ends with its reason."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.queues import sqs_client, sqs_safe
from leadbridge.flows.scheduled.jobs import Job

SEND_ATTEMPTS = 3


class JobsWriteError(RuntimeError):
    pass


class JobsQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send_many(self, jobs: list[Job]) -> None:
        """Enqueue every job or raise (ten to a request; entries SQS did not accept are sent again)."""
        for start in range(0, len(jobs), 10):
            pending = {str(i): job for i, job in enumerate(jobs[start : start + 10])}
            for _ in range(SEND_ATTEMPTS):
                try:
                    response = sqs_client().send_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[
                            {"Id": i, "MessageBody": sqs_safe(job.to_json(), "jobs")} for i, job in pending.items()
                        ],
                    )
                except (BotoCoreError, ClientError) as exc:
                    raise JobsWriteError(f"jobs write failed: {type(exc).__name__}") from exc
                pending = {f["Id"]: pending[f["Id"]] for f in response.get("Failed", []) if f["Id"] in pending}
                if not pending:
                    break
            if pending:
                raise JobsWriteError(f"{len(pending)} jobs were not accepted")

    def delay_retry(self, receipt_handle: str, seconds: int) -> None:
        sqs_client().change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 43_200))
        )


class JobDeadLetters:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, body: str, reason: str) -> None:
        sqs_client().send_message(
            QueueUrl=self.queue_url,
            MessageBody=sqs_safe(body, "job dead letters") or "{}",
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": sqs_safe(reason[:256], "job dead letters") or "unknown"}
            },
        )

"""The worker's SQS side: a FIFO batch in, partial failures out (Powertools batch processing).

Records of one message group are processed in order; after a failure the rest of that group is failed too
(``skip_group_on_error``) so order per integration holds. A retryable failure shortens the message's visibility
to its backoff; a poison event goes to the DLQ with its reason and is acknowledged.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadbridge.queues import DeadLetters, InboxMessage, InboxQueue
from leadbridge.store.integrations import BatchStatus
from leadbridge.worker import LeadWorker, PoisonEvent, RetryLater

logger = Logger(child=True)


STOP_BEFORE_TIMEOUT_MS = 15_000  # more than one record takes, CRM retries included


class OutOfTime(Exception):
    """The invocation's remaining time is too short to process another record."""


class RetryScheduled(Exception):
    """Marks a record failed for the batch processor after its retry was scheduled."""


class WorkerBatch:
    def __init__(
        self, worker: LeadWorker, sources: list[InboxQueue], dead_letters: DeadLetters, status: BatchStatus
    ) -> None:
        """``sources``: the queues the worker consumes (the inbox first, then the Salesbot continues); a retried
        record's visibility is changed on the queue it came from."""
        self.worker = worker
        self.status = status
        self.inbox = sources[0]
        self._sources = {source.queue_url.rstrip("/").rsplit("/", 1)[-1]: source for source in sources}
        self.dead_letters = dead_letters
        self._context: LambdaContext | None = None

    def process(self, event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
        messages = []
        for raw in event.get("Records", []):
            try:
                messages.append(InboxMessage.from_json(raw.get("body", "")))
            except (ValueError, TypeError):
                continue  # handled per record below
        self._context = context
        try:
            return self._process(event, context, messages)
        finally:
            self.worker.finish_batch()
            self.status.flush()

    def _process(
        self, event: dict[str, Any], context: LambdaContext | None, messages: list[InboxMessage]
    ) -> dict[str, Any]:
        self.worker.prepare(messages)
        # When every record failed, their retries are already scheduled: report them, do not fail the invocation.
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        processor.raise_on_entire_batch_failure = False  # the FIFO subclass does not forward the constructor option
        response = process_partial_response(
            event=event, record_handler=self._record, processor=processor, context=context
        )
        return dict(response)

    def _record(self, record: SQSRecord) -> str:
        context = self._context
        if context is not None and context.get_remaining_time_in_millis() < STOP_BEFORE_TIMEOUT_MS:
            # Not enough time to finish a record: hand it (and, FIFO, the rest of its group) back untouched
            # rather than be killed half-way through.
            self._source_of(record).delay_retry(record.receipt_handle, 1)
            raise OutOfTime("the invocation is about to time out")
        try:
            message = InboxMessage.from_json(record.body)
        except (ValueError, TypeError):
            self._dead_letter(record, "unreadable inbox message")
            return "dead_lettered"
        receive_count = int(record.attributes.approximate_receive_count or 1)
        try:
            outcome = self.worker.handle(message, receive_count)
        except RetryLater as exc:
            logger.info(
                "retry scheduled",
                extra={"reason": exc.reason, "delay": exc.delay_seconds, "receive_count": receive_count},
            )
            self._source_of(record).delay_retry(record.receipt_handle, exc.delay_seconds)
            raise RetryScheduled(exc.reason) from exc
        except PoisonEvent as exc:
            self._dead_letter(record, exc.reason)
            return "dead_lettered"
        logger.info("event processed", extra={"outcome": outcome, "crm": message.crm, "event": message.event})
        return outcome

    def _source_of(self, record: SQSRecord) -> InboxQueue:
        """The queue a record came from, by the queue name at the end of its ARN."""
        return self._sources.get(record.event_source_arn.rsplit(":", 1)[-1], self.inbox)

    def _dead_letter(self, record: SQSRecord, reason: str) -> None:
        logger.error("event dead-lettered", extra={"reason": reason, "message_id": record.message_id})
        group = record.attributes.message_group_id or "unknown"
        dedup = hashlib.sha256(f"{record.message_id}|{reason}".encode()).hexdigest()
        self.dead_letters.send(record.body, group, dedup, reason)

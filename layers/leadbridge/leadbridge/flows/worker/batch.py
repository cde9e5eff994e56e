"""The worker's SQS side: a FIFO batch in, partial failures out (Powertools batch processing).

Records of one message group are processed in order, and the leads they build are sent together when the
batch's records are done (one SendMessageBatch for ten leads; an event whose lead did not go out is failed and
comes back, see ``LeadWorker.send_batch_leads``); after a failure the rest of that group is failed too
(``skip_group_on_error``) so order per integration holds. A retryable failure shortens the message's visibility
to its backoff, and so does every record handed back behind it: Lambda's poller leaves a failed record invisible
for the queue's whole visibility timeout (360 s), so a record that is only skipped would hold its integration's
group that long. A poison event goes to the DLQ with its reason and is acknowledged.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.queues import DeadLetters, InboxMessage, InboxQueue
from leadbridge.aws.request_count import requests_so_far
from leadbridge.aws.store.integrations import BatchStatus
from leadbridge.crms.enrichment import PoisonEvent, RetryLater
from leadbridge.flows.worker.lead_worker import LeadWorker

logger = Logger(child=True)


STOP_BEFORE_TIMEOUT_MS = 15_000  # more than one record takes, CRM retries included
HANDED_BACK_SECONDS = 5  # a record failed on an error nobody timed: soon again, not after the queue's 360 s


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
        self._retimed: set[str] = set()  # records whose visibility this invocation already set
        self._group_delay: dict[str, int] = {}  # the backoff of the record that stopped each message group
        self._records: dict[int, SQSRecord] = {}  # each event handled in this batch (by identity): its record

    def process(self, event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
        messages = []
        for raw in event.get("Records", []):
            try:
                messages.append(InboxMessage.from_json(raw.get("body", "")))
            except (ValueError, TypeError):
                continue  # handled per record below
        self._context = context
        self._retimed, self._group_delay = set(), {}
        before = requests_so_far()
        self._records = {}
        try:
            response = self._process(event, context, messages)
            self._report_unsent(response)
            self._retime_handed_back(event, response)
            return response
        finally:
            self.worker.finish_batch()
            self.status.flush()
            spent = requests_so_far() - before
            # What this batch cost in AWS requests, by operation: the figure the cost per lead is read from.
            logger.info("batch done", extra={"records": len(event.get("Records", [])), "aws_requests": dict(spent)})

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
            self._delay(record, 1)
            raise OutOfTime("the invocation is about to time out")
        try:
            message = InboxMessage.from_json(record.body)
        except (ValueError, TypeError):
            self._dead_letter(record, "unreadable inbox message")
            return "dead_lettered"
        receive_count = int(record.attributes.approximate_receive_count or 1)
        self._records[id(message)] = record  # its lead may be sent after the handler returns: found by the event
        try:
            outcome = self.worker.handle(message, receive_count)
        except RetryLater as exc:
            logger.info(
                "retry scheduled",
                extra={"reason": exc.reason, "delay": exc.delay_seconds, "receive_count": receive_count},
            )
            self._delay(record, exc.delay_seconds)
            raise RetryScheduled(exc.reason) from exc
        except PoisonEvent as exc:
            self._dead_letter(record, exc.reason)
            return "dead_lettered"
        logger.info("event processed", extra={"outcome": outcome, "crm": message.crm, "event": message.event})
        return outcome

    def _report_unsent(self, response: dict[str, Any]) -> None:
        """Send the leads the batch built; an event whose lead did not go out is failed, to come back soon."""
        failures = response.setdefault("batchItemFailures", [])
        reported = {item.get("itemIdentifier") for item in failures}
        for message, reason in self.worker.send_batch_leads():
            record = self._records.get(id(message))
            if record is None or record.message_id in reported:
                continue
            logger.warning("retry scheduled", extra={"reason": reason, "delay": HANDED_BACK_SECONDS})
            try:
                self._delay(record, HANDED_BACK_SECONDS)
            except (BotoCoreError, ClientError):  # it comes back after the queue's visibility timeout: late, not lost
                self._retimed.add(record.message_id)
            failures.append({"itemIdentifier": record.message_id})
            reported.add(record.message_id)

    def _delay(self, record: SQSRecord, seconds: int) -> None:
        self._source_of(record).delay_retry(record.receipt_handle, seconds)
        self._retimed.add(record.message_id)
        self._group_delay.setdefault(record.attributes.message_group_id or "", seconds)

    def _retime_handed_back(self, event: dict[str, Any], response: dict[str, Any]) -> None:
        """The records reported failed whose visibility nobody set (skipped behind a failure of their group, or
        failed on an error nobody timed): their group's backoff, so the group comes back when its first record
        does."""
        failed = {item.get("itemIdentifier") for item in response.get("batchItemFailures", [])}
        by_queue: dict[str, tuple[InboxQueue, list[tuple[str, int]]]] = {}
        for raw in event.get("Records", []):
            record = SQSRecord(raw)
            if record.message_id not in failed or record.message_id in self._retimed:
                continue
            seconds = self._group_delay.get(record.attributes.message_group_id or "", HANDED_BACK_SECONDS)
            source = self._source_of(record)
            by_queue.setdefault(source.queue_url, (source, []))[1].append((record.receipt_handle, seconds))
        for source, handles in by_queue.values():
            try:
                source.delay_retries(handles)
            except (BotoCoreError, ClientError) as exc:  # they come back after the queue's timeout: late, not lost
                logger.warning("handed-back records not re-timed", extra={"error": type(exc).__name__})

    def _source_of(self, record: SQSRecord) -> InboxQueue:
        """The queue a record came from, by the queue name at the end of its ARN."""
        return self._sources.get(record.event_source_arn.rsplit(":", 1)[-1], self.inbox)

    def _dead_letter(self, record: SQSRecord, reason: str) -> None:
        logger.error("event dead-lettered", extra={"reason": reason, "message_id": record.message_id})
        group = record.attributes.message_group_id or "unknown"
        dedup = hashlib.sha256(f"{record.message_id}|{reason}".encode()).hexdigest()
        self.dead_letters.send(record.body, group, dedup, reason)

"""The two FIFO queues: the inbox (hooks -> worker) and the leads queue (worker -> analytics loader).

The inbox message is the contract between the request path and the worker: everything the worker needs to
fetch the conversation from the CRM, and nothing secret (Bitrix24 application deliveries carry OAuth tokens;
they never reach the queue).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.request_count import counted
from leadbridge.contract.integration import Integration

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

INBOX_MESSAGE_VERSION = 1
logger = Logger(child=True)

# What SQS accepts in a message (its documented set): #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
# Anything else (U+FFFE, U+FFFF, other controls, lone surrogates) makes SQS refuse the whole message.
_REFUSED_BY_SQS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
REPLACEMENT = "\ufffd"


def sqs_safe(body: str, queue: str = "") -> str:
    """``body`` with every character SQS refuses replaced by U+FFFD (counted in a log line): a CRM's, a visitor's
    or a manager's text never keeps an event out of a queue."""
    cleaned, replaced = _REFUSED_BY_SQS.subn(REPLACEMENT, body)
    if replaced:
        logger.warning("characters SQS refuses replaced", extra={"replaced": replaced, "queue": queue})
    return cleaned


@cache
def sqs_client() -> SQSClient:
    return counted(boto3.client("sqs"))


def received_stamp(now: float | None = None) -> str:
    """An inbox message's ``received_at``: ISO 8601 UTC with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class InboxMessage:
    integration_id: str
    crm: str
    account: str  # amoCRM account id (or subdomain until known); Bitrix24 member_id
    event: str  # talk.add, talk.update, message.add, ONCRMLEADADD, ONCRMDEALADD
    entity_type: str  # talk, talk_message (a chat message of a talk: no conversation of its own), lead, deal
    entity_id: str
    received_at: str  # ISO 8601 UTC
    payload: dict[str, Any] = field(default_factory=dict)  # the CRM's non-secret fields of the event
    source: str = "webhook"  # webhook | sweep | backfill
    version: int = INBOX_MESSAGE_VERSION
    conversation: str = ""  # a later conversation on the same entity (amoCRM: a talk attached to a new lead)

    @property
    def lead_key(self) -> str:
        base = f"{self.crm}:{self.account}:{self.entity_type}:{self.entity_id}"
        return f"{base}:{self.conversation}" if self.conversation else base

    @property
    def group_id(self) -> str:
        """The FIFO group: one per integration, and its backfill apart, so a webhook never waits behind an import."""
        return f"{self.integration_id}.backfill" if self.source == "backfill" else self.integration_id

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, body: str) -> InboxMessage:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("version") != INBOX_MESSAGE_VERSION:
            raise ValueError("not an inbox message of a known version")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def inbox_deduplication_id(message: InboxMessage, salt: str = "") -> str:
    """Same conversation and same event moment -> same id, so SQS drops a retried delivery within its window.

    This is only a first filter: the lead ledger is what guarantees one lead per conversation. ``salt`` makes a
    deliberate second send of the same event (a parked event resumed within 5 minutes) a new message.
    """
    payload = message.payload
    # What tells two events of one conversation apart: the talk's update time, a Bitrix24 event's ts, a chat
    # message's id, a Salesbot run's continue URL (one per run: two runs on a lead are two continues).
    moment = str(
        payload.get("updated_at") or payload.get("ts") or payload.get("message_id") or payload.get("return_url") or ""
    )
    raw = "|".join((message.integration_id, message.lead_key, message.event, moment, salt))
    return hashlib.sha256(raw.encode()).hexdigest()


class InboxQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send_many(self, messages: list[InboxMessage], deduplication_salt: str = "") -> None:
        """Enqueue every message or raise: a partial write must make the hook answer 5xx so the CRM retries."""
        if len(messages) == 1:  # the common case: one talk or one Bitrix24 event per webhook
            message = messages[0]
            try:
                sqs_client().send_message(
                    QueueUrl=self.queue_url,
                    MessageBody=sqs_safe(message.to_json(), "inbox"),
                    MessageGroupId=message.group_id,
                    MessageDeduplicationId=inbox_deduplication_id(message, deduplication_salt),
                )
            except (BotoCoreError, ClientError) as exc:
                raise InboxWriteError(f"inbox write failed: {type(exc).__name__}") from exc
            return
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            try:
                response = sqs_client().send_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {
                            "Id": str(index),
                            "MessageBody": sqs_safe(message.to_json(), "inbox"),
                            "MessageGroupId": message.group_id,
                            "MessageDeduplicationId": inbox_deduplication_id(message, deduplication_salt),
                        }
                        for index, message in enumerate(chunk)
                    ],
                )
            except (BotoCoreError, ClientError) as exc:
                raise InboxWriteError(f"inbox write failed: {type(exc).__name__}") from exc
            if response.get("Failed"):
                raise InboxWriteError(f"{len(response['Failed'])} of {len(chunk)} inbox messages were not accepted")

    def delay_retry(self, receipt_handle: str, seconds: int) -> None:
        """Make a failed message visible again after ``seconds`` instead of the queue's full visibility timeout."""
        sqs_client().change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 43_200))
        )

    def delay_retries(self, handles: list[tuple[str, int]]) -> None:
        """``delay_retry`` for several messages, ten to a request; a handle SQS refuses keeps its timeout."""
        for start in range(0, len(handles), 10):
            sqs_client().change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": max(0, min(seconds, 43_200))}
                    for i, (handle, seconds) in enumerate(handles[start : start + 10])
                ],
            )


class InboxWriteError(RuntimeError):
    pass


class LeadsQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def publish(self, lead_json: str, lead_id: str, integration_id: str) -> str:
        """Send one lead; the deduplication id is the lead id, so a retried emit within 5 minutes is dropped."""
        message = OutgoingLead(sqs_safe(lead_json, "leads"), lead_id, integration_id).message()
        return sqs_client().send_message(QueueUrl=self.queue_url, **message)["MessageId"]

    def publish_many(self, leads: list[OutgoingLead]) -> list[str | None]:
        """Send a batch's leads in as few requests as SQS takes (10 a request, 256 KiB together); for each lead, in
        order, its message id, or None when it was not sent (that entry refused, or the request failed)."""
        sent: list[str | None] = [None] * len(leads)
        safe = [replace(lead, body=sqs_safe(lead.body, "leads")) for lead in leads]
        for chunk in _send_chunks([(index, lead.body) for index, lead in enumerate(safe)]):
            entries = [{"Id": str(index), **safe[index].message()} for index, _ in chunk]
            try:
                response = sqs_client().send_message_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
            except (BotoCoreError, ClientError) as exc:
                logger.warning("leads not sent", extra={"error": type(exc).__name__, "leads": len(chunk)})
                continue
            for done in response.get("Successful", []):
                sent[int(done["Id"])] = done["MessageId"]
            for refused in response.get("Failed", []):
                logger.warning(
                    "lead not sent", extra={"code": refused.get("Code"), "sender": refused.get("SenderFault")}
                )
        return sent


@dataclass(frozen=True, slots=True)
class OutgoingLead:
    body: str  # the lead's JSON
    lead_id: str  # its deduplication id: a lead sent again within 5 minutes is dropped
    integration_id: str  # its message group: one integration's leads in order

    def message(self) -> dict[str, Any]:
        """The lead's SQS message (its body already ``sqs_safe``)."""
        return {
            "MessageBody": self.body,
            "MessageGroupId": self.integration_id,
            "MessageDeduplicationId": self.lead_id,
            "MessageAttributes": {"schema_version": {"DataType": "Number", "StringValue": "1"}},
        }


SEND_BATCH_ENTRIES = 10
SEND_BATCH_BYTES = 256 * 1024 - 4 * 1024  # SQS's limit for a batch's bodies and attributes, less room for the latter


def _send_chunks(bodies: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    chunks: list[list[tuple[int, str]]] = []
    size = 0
    for index, body in bodies:
        length = len(body.encode())
        if not chunks or len(chunks[-1]) == SEND_BATCH_ENTRIES or size + length > SEND_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append((index, body))
        size += length
    return chunks


class DeadLetters:
    """Events that can never succeed go straight to the inbox DLQ, with the reason as a message attribute."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, body: str, group_id: str, deduplication_id: str, reason: str) -> None:
        sqs_client().send_message(
            QueueUrl=self.queue_url,
            MessageBody=sqs_safe(body, "dead letters"),
            MessageGroupId=group_id or "unknown",
            MessageDeduplicationId=deduplication_id,
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": sqs_safe(reason[:256], "dead letters") or "unknown"}
            },
        )


class RepliesQueue:
    """Managers' replies for the cabinet's chat (FIFO: in order per conversation, each reply once)."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, reply: dict[str, Any], group: str, deduplication_id: str) -> None:
        try:
            sqs_client().send_message(
                QueueUrl=self.queue_url,
                MessageBody=sqs_safe(json.dumps(reply, ensure_ascii=False, separators=(",", ":")), "replies"),
                MessageGroupId=group[:128] or "unknown",
                MessageDeduplicationId=hashlib.sha256(deduplication_id.encode()).hexdigest(),
            )
        except (BotoCoreError, ClientError) as exc:
            raise InboxWriteError(f"replies queue write failed: {type(exc).__name__}") from exc


def recovered_message(
    integration: Integration,
    account: str,
    event: str,
    entity_type: str,
    entity_id: str,
    payload: dict[str, Any],
    now: float,
    source: str,
) -> InboxMessage:
    """The inbox message the lost webhook would have been (``source``: sweep or backfill)."""
    return InboxMessage(
        integration_id=integration.integration_id,
        crm=integration.crm,
        account=account,
        event=event,
        entity_type=entity_type,
        entity_id=entity_id,
        received_at=received_stamp(now),
        payload=payload,
        source=source,
    )

"""Move messages from a dead-letter queue back to its queue, after the cause is fixed.

``python -m leadbridge.flows.recovery.redrive --stack <stack> --queue inbox|leads`` (queue URLs from the stack's resources) or
``--dlq-url URL --queue-url URL``. Safe to repeat: each message is sent before it is deleted (a crash in between
leaves a copy in both, and the lead ledger makes the second one a duplicate), and the deduplication id is derived
from the dead-lettered message's id, so SQS drops a second send of the same message within its window.
(SQS's own StartMessageMoveTask would do the same in AWS; this works on every SQS, the local emulator included.)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from typing import Any

import boto3

QUEUES = {"inbox": ("InboxQueue", "InboxDeadLetterQueue"), "leads": ("LeadsQueue", "LeadsDeadLetterQueue")}


@dataclass(frozen=True, slots=True)
class RedriveReport:
    moved: int
    reasons: dict[str, int]


def redrive(sqs: Any, dlq_url: str, queue_url: str, limit: int | None = None) -> RedriveReport:
    fifo = queue_url.endswith(".fifo")
    moved = 0
    reasons: dict[str, int] = {}
    while limit is None or moved < limit:
        batch = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10 if limit is None else max(1, min(10, limit - moved)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=120,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            attributes = message.get("MessageAttributes", {})
            reason = attributes.get("reason", {}).get("StringValue", "receive limit reached")
            kwargs: dict[str, Any] = {
                "QueueUrl": queue_url,
                "MessageBody": message["Body"],
                "MessageAttributes": {k: _attribute(v) for k, v in attributes.items() if k != "reason"},
            }
            if fifo:
                kwargs["MessageGroupId"] = message.get("Attributes", {}).get("MessageGroupId") or "redrive"
                kwargs["MessageDeduplicationId"] = hashlib.sha256(
                    f"redrive|{message['MessageId']}".encode()
                ).hexdigest()
            sqs.send_message(**kwargs)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
            reasons[reason] = reasons.get(reason, 0) + 1
    return RedriveReport(moved=moved, reasons=reasons)


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k in {"DataType", "StringValue", "BinaryValue"}}


def stack_queue_urls(stack: str, queue: str) -> tuple[str, str]:
    source, dead = QUEUES[queue]
    cloudformation = boto3.client("cloudformation")

    def physical(logical: str) -> str:
        found = cloudformation.describe_stack_resource(StackName=stack, LogicalResourceId=logical)
        url: str = found["StackResourceDetail"]["PhysicalResourceId"]
        return url

    return physical(dead), physical(source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Move messages from a DLQ back to its queue.")
    parser.add_argument("--stack", help="CloudFormation stack name (with --queue)")
    parser.add_argument("--queue", choices=sorted(QUEUES), default="inbox")
    parser.add_argument("--dlq-url")
    parser.add_argument("--queue-url")
    parser.add_argument("--limit", type=int, default=None, help="move at most this many messages")
    args = parser.parse_args(argv)
    if args.dlq_url and args.queue_url:
        dlq_url, queue_url = args.dlq_url, args.queue_url
    elif args.stack:
        dlq_url, queue_url = stack_queue_urls(args.stack, args.queue)
    else:
        parser.error("give --stack (and --queue), or --dlq-url and --queue-url")
    report = redrive(boto3.client("sqs"), dlq_url, queue_url, args.limit)
    print(f"moved {report.moved} message(s) from {dlq_url} to {queue_url}")
    for reason, count in sorted(report.reasons.items()):
        print(f"  {count:5d}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The local SQS drops a FIFO message whose deduplication id was sent in the last 5 minutes, as SQS does, even after
the first was received and deleted, in the scope the queue names (``DeduplicationScope``; see ``local/aws.py``:
moto compares only with the messages still in the queue)."""

from __future__ import annotations

from typing import Any

from leadbridge_local.runner import LocalRunner


def bodies(sqs: Any, url: str) -> list[str]:
    taken = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            taken.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return taken


def test_a_fifo_send_repeated_after_the_first_was_deleted_is_dropped(runner: LocalRunner) -> None:
    sqs = runner.stack.client("sqs")
    inbox = runner.stack.ref("InboxQueue")  # DeduplicationScope: messageGroup
    sqs.send_message(QueueUrl=inbox, MessageBody="first", MessageGroupId="g-1", MessageDeduplicationId="d-1")
    assert bodies(sqs, inbox) == ["first"]
    answer = sqs.send_message(QueueUrl=inbox, MessageBody="again", MessageGroupId="g-1", MessageDeduplicationId="d-1")
    assert answer["MessageId"]  # accepted, as SQS answers a duplicate
    sqs.send_message(QueueUrl=inbox, MessageBody="other group", MessageGroupId="g-2", MessageDeduplicationId="d-1")
    sqs.send_message_batch(
        QueueUrl=inbox,
        Entries=[
            {"Id": "a", "MessageBody": "again, batched", "MessageGroupId": "g-1", "MessageDeduplicationId": "d-1"},
            {"Id": "b", "MessageBody": "new", "MessageGroupId": "g-1", "MessageDeduplicationId": "d-2"},
        ],
    )
    assert sorted(bodies(sqs, inbox)) == ["new", "other group"]  # the id is the group's, not the queue's

    dead = runner.stack.ref("InboxDeadLetterQueue")  # no DeduplicationScope: the queue's
    sqs.send_message(QueueUrl=dead, MessageBody="first", MessageGroupId="g-1", MessageDeduplicationId="d-1")
    sqs.send_message(QueueUrl=dead, MessageBody="other group", MessageGroupId="g-2", MessageDeduplicationId="d-1")
    assert bodies(sqs, dead) == ["first"]

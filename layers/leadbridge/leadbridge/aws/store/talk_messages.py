"""An amoCRM talk's chat messages, kept for the ledger's retention: one item per talk in the ledger table
(``lead_key = amocrm:<account>:talk:<id>#messages``), the first ``MAX_MESSAGES`` in arrival order and at most
``MAX_BYTES`` of them, far below DynamoDB's 400 KB item limit (60 messages of 4,000 Cyrillic characters would pass
it). What does not fit is counted (``left_out``), and the transcript ends with a line saying so: a long chat never
meets a ValidationException, which would be retried as an AWS hiccup and end in the DLQ.

A webhook retried by amoCRM or redelivered by SQS appends the same message again; readers drop repeats by id.
"""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError

from leadbridge.aws.store.dynamo import dynamodb_client, from_item, to_item
from leadbridge.aws.store.read_ahead import ReadAhead, read_item, written

MAX_MESSAGES = 60  # the chat's first words are what a request needs
MAX_BYTES = 200_000  # the messages' JSON, UTF-8: with the key and the counters, half of an item's 400 KB


def messages_key(account: str, talk_id: str) -> str:
    return f"amocrm:{account}:talk:{talk_id}#messages"


class DynamoTalkMessages:
    def __init__(self, table_name: str, retention_days: int, read_ahead: ReadAhead | None = None) -> None:
        """``read_ahead``: the worker's batch reads (``store/read_ahead.py``): the batch's talks with its first read."""
        self.table_name = table_name
        self.retention_seconds = retention_days * 86400
        self.read_ahead = read_ahead

    def add(self, account: str, talk_id: str, message: dict[str, Any]) -> None:
        size = len(json.dumps(message, ensure_ascii=False, default=str).encode())
        key = written(self.read_ahead, self.table_name, {"lead_key": {"S": messages_key(account, talk_id)}})
        expires = int(time.time()) + self.retention_seconds
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression=(
                    "SET messages = list_append(if_not_exists(messages, :none), :new), #ttl = :exp, "
                    "stored_bytes = if_not_exists(stored_bytes, :zero) + :size"
                ),
                # Conditions cannot add: the room left for this message is computed here.
                ConditionExpression=(
                    "attribute_not_exists(messages) OR "
                    "(size(messages) < :cap AND (attribute_not_exists(stored_bytes) OR stored_bytes <= :room))"
                ),
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=to_item(
                    {
                        ":none": [],
                        ":new": [message],
                        ":exp": expires,
                        ":cap": MAX_MESSAGES,
                        ":zero": 0,
                        ":size": size,
                        ":room": MAX_BYTES - size,
                    }
                ),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            # A full talk keeps its first messages; the transcript will say how many more there were.
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="ADD left_out :one SET #ttl = :exp",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=to_item({":one": 1, ":exp": expires}),
            )

    def get(self, account: str, talk_id: str) -> list[dict[str, Any]]:
        item = read_item(self.read_ahead, self.table_name, {"lead_key": {"S": messages_key(account, talk_id)}})
        if not item:
            return []
        stored = from_item(item)
        unique: dict[str, dict[str, Any]] = {}
        for message in stored.get("messages", []):
            if isinstance(message, dict):
                unique.setdefault(str(message.get("message_id")), message)
        kept = list(unique.values())
        left_out = int(stored.get("left_out") or 0)  # repeats of kept messages count too: "up to"
        if left_out and kept:
            last = max((m.get("created_at") for m in kept if m.get("created_at")), default=None, key=str)
            kept.append(
                {
                    "message_id": "left-out",
                    "created_at": last,
                    "author": "system",
                    "text": f"[up to {left_out} later messages left out: the chat was too long to keep]",
                }
            )
        return kept

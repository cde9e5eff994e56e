"""An amoCRM talk's chat messages, kept for the ledger's retention: one item per talk in the ledger table
(``lead_key = amocrm:<account>:talk:<id>#messages``), the first ``MAX_MESSAGES`` in arrival order.

A webhook retried by amoCRM or redelivered by SQS appends the same message again; readers drop repeats by id.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from leadbridge.aws.store.dynamo import dynamodb_client, from_item, to_item

MAX_MESSAGES = 60  # the chat's first words are what a request needs; the item stays far below 400 KB


def messages_key(account: str, talk_id: str) -> str:
    return f"amocrm:{account}:talk:{talk_id}#messages"


class DynamoTalkMessages:
    def __init__(self, table_name: str, retention_days: int) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_days * 86400

    def add(self, account: str, talk_id: str, message: dict[str, Any]) -> None:
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key={"lead_key": {"S": messages_key(account, talk_id)}},
                UpdateExpression="SET messages = list_append(if_not_exists(messages, :none), :new), #ttl = :exp",
                ConditionExpression="attribute_not_exists(messages) OR size(messages) < :cap",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=to_item(
                    {
                        ":none": [],
                        ":new": [message],
                        ":exp": int(time.time()) + self.retention_seconds,
                        ":cap": MAX_MESSAGES,
                    }
                ),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise  # a full talk keeps its first messages: nothing to do

    def get(self, account: str, talk_id: str) -> list[dict[str, Any]]:
        item = (
            dynamodb_client()
            .get_item(
                TableName=self.table_name,
                Key={"lead_key": {"S": messages_key(account, talk_id)}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        if not item:
            return []
        unique: dict[str, dict[str, Any]] = {}
        for message in from_item(item).get("messages", []):
            if isinstance(message, dict):
                unique.setdefault(str(message.get("message_id")), message)
        return list(unique.values())

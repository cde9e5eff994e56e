"""Parked events in the integrations table: ``pk = PARKED#<integration id>``, ``sk = <lead key>``.

One item per conversation: a second event of a parked conversation finds it there already. The item holds the
inbox message as it was, so resuming sends exactly what arrived. No ``ttl``: a parked event waits as long as the
person it waits for (see ``leadbridge.flows.worker.parking``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from leadbridge.aws.store.dynamo import dynamodb_client, from_item, put_if_absent

PARKED_PK_PREFIX = "PARKED#"


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    lead_key: str
    body: str  # the inbox message, JSON
    reason: str
    parked_at: int


def parked_pk(integration_id: str) -> str:
    return f"{PARKED_PK_PREFIX}{integration_id}"


class DynamoParkedEvents:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def park(self, integration_id: str, lead_key: str, body: str, reason: str, now: int) -> bool:
        """Keep the event; False when this conversation was parked already (the first event is kept)."""
        item = {"pk": parked_pk(integration_id), "sk": lead_key, "body": body, "reason": reason[:300], "parked_at": now}
        return put_if_absent(self.table_name, item, "pk")

    def list(self, integration_id: str, limit: int = 1000) -> list[ParkedEvent]:
        """The oldest-keyed first; at most ``limit`` (a resume takes them in rounds)."""
        found: list[ParkedEvent] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": parked_pk(integration_id)}},
            "ConsistentRead": True,
        }
        while len(found) < limit:
            page = dynamodb_client().query(**kwargs)
            for raw in page.get("Items", []):
                record = from_item(raw)
                found.append(ParkedEvent(record["sk"], record["body"], record.get("reason", ""), record["parked_at"]))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def count(self, integration_id: str) -> int:
        total = 0
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": parked_pk(integration_id)}},
            "Select": "COUNT",
        }
        while True:
            page = dynamodb_client().query(**kwargs)
            total += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def remove(self, integration_id: str, event: ParkedEvent) -> None:
        """Delete this parking of the conversation (not a newer one that replaced it)."""
        try:
            dynamodb_client().delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": parked_pk(integration_id)}, "sk": {"S": event.lead_key}},
                ConditionExpression="parked_at = :p",
                ExpressionAttributeValues={":p": {"N": str(event.parked_at)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

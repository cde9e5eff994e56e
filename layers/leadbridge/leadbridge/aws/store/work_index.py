"""The sparse ``scheduled-work`` index of the integrations table: what the scheduled jobs visit, without a Scan.

An item is in the index only while it carries ``work_shard``:
- an active integration's settings item: ``active#NN``;
- a running backfill's job item: ``backfill#NN``.
``NN`` is one of ``SHARDS`` buckets chosen by a hash of the integration id, so that no index partition holds more
than its share of 10,000 (or 100,000) integrations and the planner can read the shards side by side.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from leadbridge.aws.store.dynamo import dynamodb_client, from_item, to_value

WORK_INDEX = "scheduled-work"
SHARDS = 16
WorkKind = Literal["active", "backfill"]
INTEGRATION_PK_PREFIX = "INTEGRATION#"


def work_shard(kind: WorkKind, integration_id: str) -> str:
    bucket = int(hashlib.sha256(integration_id.encode()).hexdigest()[:8], 16) % SHARDS
    return f"{kind}#{bucket:02d}"


def all_shards(kind: WorkKind) -> list[str]:
    return [f"{kind}#{bucket:02d}" for bucket in range(SHARDS)]


class WorkIndex:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def page(self, shard: str, cursor: dict[str, Any] | None, limit: int) -> tuple[list[str], dict[str, Any] | None]:
        """Up to ``limit`` integration ids of one shard after ``cursor``; and the cursor of the next page (None: the
        shard is done). The cursor is the index's own ``LastEvaluatedKey``: plain strings, safe in a job message."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": WORK_INDEX,
            "KeyConditionExpression": "work_shard = :s",
            "ExpressionAttributeValues": {":s": to_value(shard)},
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = cursor
        response = dynamodb_client().query(**kwargs)
        ids = [str(from_item(item)["pk"]).removeprefix(INTEGRATION_PK_PREFIX) for item in response.get("Items", [])]
        following = response.get("LastEvaluatedKey")
        return ids, (dict(following) if following else None)

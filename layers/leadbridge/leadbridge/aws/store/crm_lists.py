"""The pickers' lists, cached per integration (``sk = CRM_LIST#<kind>`` in its partition of the integrations table).

A cabinet opening its settings page asks for the three lists at once, and again on every reload: the cache keeps
the CRM's budget for leads. An item is used while it is younger than the cache's age; DynamoDB's TTL removes it a
day later (TTL is lazy: the age decides, never the item's presence).
"""

from __future__ import annotations

import json
import time
from typing import Any

from leadbridge.aws.store.dynamo import dynamodb_client
from leadbridge.aws.store.integrations import integration_pk

TTL_SLACK_SECONDS = 86_400


def list_sk(kind: str) -> str:
    return f"CRM_LIST#{kind}"


class DynamoCrmLists:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def read(self, integration_id: str, kind: str, max_age_seconds: int, now: float | None = None) -> Any:
        """The cached rows (JSON values), or None when there are none young enough."""
        if max_age_seconds <= 0:
            return None
        item = (
            dynamodb_client()
            .get_item(
                TableName=self.table_name,
                Key={"pk": {"S": integration_pk(integration_id)}, "sk": {"S": list_sk(kind)}},
            )
            .get("Item")
        )
        if not item:
            return None
        fetched_at = int(item.get("fetched_at", {}).get("N", "0"))
        if fetched_at < (time.time() if now is None else now) - max_age_seconds:
            return None
        return json.loads(item["rows"]["S"])

    def write(self, integration_id: str, kind: str, rows: Any, now: float | None = None) -> None:
        fetched_at = int(time.time() if now is None else now)
        dynamodb_client().put_item(
            TableName=self.table_name,
            Item={
                "pk": {"S": integration_pk(integration_id)},
                "sk": {"S": list_sk(kind)},
                "rows": {"S": json.dumps(rows, ensure_ascii=False, separators=(",", ":"))},
                "fetched_at": {"N": str(fetched_at)},
                "ttl": {"N": str(fetched_at + TTL_SLACK_SECONDS)},
            },
        )

"""DynamoDB's Time to Live, which moto never applies: items whose TTL attribute has passed are deleted.

Read from ``template.yaml`` (every table with ``TimeToLiveSpecification`` enabled), applied as DynamoDB does: only a
Number attribute counts (epoch seconds), anything else is left alone. It runs in the background on the local
runner's clock, and on demand (``sweep()``) for tests that advance that clock. Without it a local run could keep an
item that AWS would have deleted, and a bug that depends on it would pass.

In the background it sweeps once a minute: DynamoDB deletes an expired item within a few days, so that is still
sooner than AWS would, and each sweep is a scan of every TTL table that the local DynamoDB (one request at a time)
makes every other request wait for: with a few thousand integrations, a sweep every 10 s took a tenth of its time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leadbridge_local.aws import LocalStack
from leadbridge_local.template import resources_of_type


@dataclass(frozen=True)
class TtlTable:
    name: str
    attribute: str
    keys: tuple[str, ...]


def ttl_tables(stack: LocalStack) -> list[TtlTable]:
    found = []
    for logical_id, spec in resources_of_type(stack.template, "AWS::DynamoDB::Table").items():
        ttl = spec["Properties"].get("TimeToLiveSpecification") or {}
        if ttl.get("Enabled"):
            keys = tuple(k["AttributeName"] for k in spec["Properties"]["KeySchema"])
            found.append(TtlTable(stack.ref(logical_id), ttl["AttributeName"], keys))
    return found


class TtlSweeper:
    def __init__(self, stack: LocalStack, clock: Callable[[], float], interval_seconds: float = 60.0) -> None:
        self.stack = stack
        self.clock = clock
        self.interval = interval_seconds
        self.tables = ttl_tables(stack)
        self.deleted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ttl-sweeper", daemon=True)
        self._lock = threading.Lock()

    def sweep(self) -> int:
        """Delete every expired item now; returns how many."""
        with self._lock:
            dynamodb = self.stack.client("dynamodb")
            now = int(self.clock())
            deleted = 0
            for table in self.tables:
                kwargs: dict[str, Any] = {
                    "TableName": table.name,
                    # A Number below now; DynamoDB ignores TTL attributes of any other type.
                    "FilterExpression": "attribute_type(#ttl, :n) AND #ttl < :now",
                    "ExpressionAttributeNames": {"#ttl": table.attribute},
                    "ExpressionAttributeValues": {":n": {"S": "N"}, ":now": {"N": str(now)}},
                    "ProjectionExpression": ", ".join(f"#k{i}" for i in range(len(table.keys))),
                }
                kwargs["ExpressionAttributeNames"].update({f"#k{i}": k for i, k in enumerate(table.keys)})
                while True:
                    page = dynamodb.scan(**kwargs)
                    for item in page.get("Items", []):
                        dynamodb.delete_item(TableName=table.name, Key=item)
                        deleted += 1
                    if "LastEvaluatedKey" not in page:
                        break
                    kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            self.deleted += deleted
            return deleted

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception:  # noqa: S112 - a stopping stack may refuse a scan; the next round tries again
                continue

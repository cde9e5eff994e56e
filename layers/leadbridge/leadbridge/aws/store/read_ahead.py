"""Items a worker batch is about to read one at a time, read before it in one request.

A batch of ten leads from five integrations reads each integration's settings, connection state and token, and
each amoCRM talk's messages: some twenty GetItems. Read ahead with one consistent ``BatchGetItem`` (like the reads
they replace), they cost one request. Each item read ahead serves one read (``take`` removes it): a second read of
the same item, such as parking's re-check or a token read after the CRM refused one, goes to the table. A store
that writes an item ``forget``s it first, and ``clear`` ends the batch: nothing read ahead outlives its batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from leadbridge.aws.store.dynamo import dynamodb_client

Key = dict[str, Any]  # a key as DynamoDB types it: {"pk": {"S": "..."}, "sk": {"S": "..."}}
BATCH_GET_KEYS = 100  # BatchGetItem's limit per request


class NotReadAhead:
    """``take``'s answer for an item nobody read ahead: read it from the table."""


NOT_READ_AHEAD = NotReadAhead()


def _identity(table: str, key: Mapping[str, Any]) -> tuple[str, str]:
    return table, json.dumps(dict(key), sort_keys=True)


class ReadAhead:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], dict[str, Any] | None] = {}

    def load(self, wanted: Mapping[str, Iterable[Key]], projections: Mapping[str, str] | None = None) -> None:
        """Read ``wanted`` (table -> keys) in as few requests as BatchGetItem allows; an item that does not exist
        is remembered as absent (``take`` answers None). ``projections``: table -> ProjectionExpression."""
        pairs = list(
            dict.fromkeys((table, json.dumps(key, sort_keys=True)) for table, keys in wanted.items() for key in keys)
        )
        key_names = {table: sorted(json.loads(key)) for table, key in pairs}
        for start in range(0, len(pairs), BATCH_GET_KEYS):
            chunk = pairs[start : start + BATCH_GET_KEYS]
            request: dict[str, Any] = {}
            for table, key in chunk:
                self._items[(table, key)] = None
                entry = request.setdefault(table, {"Keys": [], "ConsistentRead": True})
                entry["Keys"].append(json.loads(key))
                if projections and table in projections:
                    entry["ProjectionExpression"] = projections[table]
            while request:
                response = dynamodb_client().batch_get_item(RequestItems=request)
                for table, items in response.get("Responses", {}).items():
                    for item in items:
                        found = {name: item[name] for name in key_names[table] if name in item}
                        self._items[_identity(table, found)] = dict(item)
                request = dict(response.get("UnprocessedKeys") or {})

    def take(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | NotReadAhead | None:
        """The item as read ahead (None: it did not exist), once; ``NOT_READ_AHEAD`` when it was not read ahead."""
        return self._items.pop(_identity(table, key), NOT_READ_AHEAD)

    def forget(self, table: str, key: Mapping[str, Any]) -> None:
        self._items.pop(_identity(table, key), None)

    def clear(self) -> None:
        self._items.clear()

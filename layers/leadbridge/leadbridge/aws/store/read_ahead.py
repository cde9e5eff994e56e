"""Items a worker batch is about to read one at a time, read before it in one request.

A batch of ten leads from five integrations reads each integration's settings, connection state and token, and
each amoCRM talk's messages: some twenty GetItems. Read ahead with one consistent ``BatchGetItem`` (like the reads
they replace), they cost one request. Each item read ahead serves one read (``take`` removes it): a second read of
the same item, such as parking's re-check or a token read after the CRM refused one, goes to the table. A store
that writes an item ``forget``s it first (``written``), and ``clear`` ends the batch: nothing read ahead outlives
its batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from leadbridge.aws.store.dynamo import batch_get, dynamodb_client

Key = dict[str, Any]  # a key as DynamoDB types it: {"pk": {"S": "..."}, "sk": {"S": "..."}}


class NotReadAhead:
    """``take``'s answer for an item nobody read ahead: read it from the table."""


NOT_READ_AHEAD = NotReadAhead()


def _identity(table: str, key: Mapping[str, Any]) -> tuple[str, str]:
    return table, json.dumps(dict(key), sort_keys=True)


class ReadAhead:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], dict[str, Any] | None] = {}

    def load(self, wanted: Mapping[str, Iterable[Key]], projections: Mapping[str, str] | None = None) -> None:
        """Read ``wanted`` (table -> keys) in as few requests as BatchGetItem allows (``dynamo.batch_get``)."""
        listed = {table: list(keys) for table, keys in wanted.items()}
        self.hold(listed, batch_get(listed, projections))

    def hold(self, wanted: Mapping[str, list[Key]], found: Mapping[str, list[dict[str, Any]]]) -> None:
        """Keep what a batch read found for ``wanted``; a key it did not find is remembered as absent (``take``
        answers None)."""
        for table, keys in wanted.items():
            for key in keys:
                self._items[_identity(table, key)] = None
            names = sorted(keys[0]) if keys else []
            for item in found.get(table, []):
                self._items[_identity(table, {name: item[name] for name in names if name in item})] = item

    def take(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | NotReadAhead | None:
        """The item as read ahead (None: it did not exist), once; ``NOT_READ_AHEAD`` when it was not read ahead."""
        return self._items.pop(_identity(table, key), NOT_READ_AHEAD)

    def forget(self, table: str, key: Mapping[str, Any]) -> None:
        self._items.pop(_identity(table, key), None)

    def clear(self) -> None:
        self._items.clear()


def read_item(read_ahead: ReadAhead | None, table: str, key: Key) -> dict[str, Any] | None:
    """A consistent GetItem, answered by the batch's read-ahead when it holds the item."""
    if read_ahead is not None:
        found = read_ahead.take(table, key)
        if not isinstance(found, NotReadAhead):
            return found
    return dynamodb_client().get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")


def written(read_ahead: ReadAhead | None, table: str, key: Key) -> Key:
    """``key``, no longer read ahead: the caller is about to write its item."""
    if read_ahead is not None:
        read_ahead.forget(table, key)
    return key

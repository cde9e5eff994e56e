"""Backfills in the integrations table: the job, and the conversations it found but has not imported yet.

- ``pk = INTEGRATION#<id>``, ``sk = BACKFILL``: one backfill per integration (a new one replaces a finished one):
  the period, the state, the cursor of the listing, the counters (total / done / already known / errors) and a
  lease, so that two runs never work on the same backfill at once. While it runs it carries ``work_shard``, which
  puts it in the sparse ``scheduled-work`` index the planner pages through (``store/work_index.py``).
- ``pk = BACKFILL#<id>``, ``sk = <entity>#<id>``: one item per conversation listed and not imported yet. Written
  with a condition, so a page listed twice (a run stopped between the write and the cursor's) counts once;
  deleted when imported. ``ttl`` removes what a cancelled backfill left behind.
Counters move by ``ADD`` in the same write as the cursor, so a stop at any point never counts twice.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from leadbridge.aws.store.dynamo import dynamodb_client, from_item, to_item, to_value
from leadbridge.aws.store.integrations import integration_pk
from leadbridge.aws.store.work_index import work_shard
from leadbridge.contract.backfill_job import BackfillJob, BackfillState

JOB_SK = "BACKFILL"
PENDING_PK_PREFIX = "BACKFILL#"
# Pending items live as long as their backfill may: one waiting weeks for a re-connect must still find them (they are
# deleted as they are settled, or when a newer backfill clears them); the TTL only collects what was abandoned.
PENDING_TTL_SECONDS = 400 * 86_400
PENDING_CHUNK = 25  # keys per transaction (of at most 100 actions): one write request per 25 conversations listed
COUNTERS = ("total", "done", "already_known", "errors")


def pending_pk(integration_id: str) -> str:
    return f"{PENDING_PK_PREFIX}{integration_id}"


def _counter_adds(counts: dict[str, int], names: dict[str, str], values: dict[str, Any]) -> str:
    """``ADD`` clauses for the counters (``total`` is a reserved word: every counter goes by a name placeholder)."""
    adds = []
    for name, amount in counts.items():
        if name not in COUNTERS:
            raise ValueError(f"not a backfill counter: {name}")
        if amount:
            names[f"#n_{name}"] = name
            values[f":n_{name}"] = to_value(amount)
            adds.append(f"#n_{name} :n_{name}")
    return ", ".join(adds)


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoBackfills:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def _key(self, integration_id: str) -> dict[str, Any]:
        return {"pk": {"S": integration_pk(integration_id)}, "sk": {"S": JOB_SK}}

    def get(self, integration_id: str) -> BackfillJob | None:
        response = dynamodb_client().get_item(
            TableName=self.table_name, Key=self._key(integration_id), ConsistentRead=True
        )
        item = response.get("Item")
        return BackfillJob.from_record(from_item(item)) if item else None

    def start(self, job: BackfillJob) -> bool:
        """Store a new backfill; False when one is still running for the integration."""
        record = {**job.to_record(), "pk": integration_pk(job.integration_id), "sk": JOB_SK}
        record["work_shard"] = work_shard("backfill", job.integration_id)  # found by the planner while running
        try:
            dynamodb_client().put_item(
                TableName=self.table_name,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(pk) OR #s <> :running",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":running": {"S": "running"}},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def take_lease(self, job: BackfillJob, now: int, seconds: int) -> bool:
        """This run works on the backfill until ``now + seconds``; False when another run holds it."""
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key=self._key(job.integration_id),
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="backfill_id = :id AND #s = :running AND (attribute_not_exists(lease_until) "
                "OR lease_until < :now)",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":until": {"N": str(now + seconds)},
                    ":now": {"N": str(now)},
                    ":id": {"S": job.backfill_id},
                    ":running": {"S": "running"},
                },
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def release_lease(self, job: BackfillJob) -> None:
        self._update(job, "REMOVE lease_until", {})

    def advance(
        self,
        job: BackfillJob,
        *,
        cursor: dict[str, Any] | None = None,
        listing_done: bool | None = None,
        counts: dict[str, int] | None = None,
        last_error: str | None = None,
    ) -> bool:
        """Move the cursor and the counters in one write; False when the backfill is no longer this one or no
        longer running (cancelled, or replaced)."""
        sets = ["updated_at = :now"]
        values: dict[str, Any] = {":now": to_value(int(time.time()))}
        if cursor is not None:
            sets.append("#c = :cursor")
            values[":cursor"] = to_value(cursor)
        if listing_done is not None:
            sets.append("listing_done = :ld")
            values[":ld"] = to_value(listing_done)
        if last_error is not None:
            sets.append("last_error = :err")
            values[":err"] = to_value(last_error[:300])
        names = {"#c": "cursor"} if cursor is not None else {}
        adds = _counter_adds(counts or {}, names, values)
        expression = f"SET {', '.join(sets)}" + (f" ADD {adds}" if adds else "")
        return self._update(job, expression, values, names=names)

    def finish(self, job: BackfillJob, state: BackfillState, now: int) -> bool:
        return self._update(
            job,
            "SET #s = :state, finished_at = :now, updated_at = :now REMOVE lease_until, work_shard",
            {":state": to_value(state), ":now": to_value(now)},
            names={"#s": "state"},
        )

    def _update(
        self, job: BackfillJob, expression: str, values: dict[str, Any], names: dict[str, str] | None = None
    ) -> bool:
        all_names = {"#state": "state", **(names or {})}
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key=self._key(job.integration_id),
                UpdateExpression=expression,
                ConditionExpression="backfill_id = :bf AND #state = :running",
                ExpressionAttributeNames=all_names,
                ExpressionAttributeValues={**values, ":bf": to_value(job.backfill_id), ":running": to_value("running")},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------------ conversations listed, not imported yet
    def add_pending(self, job: BackfillJob, keys: list[str], now: int) -> int | None:
        """Remember conversations to import; returns how many were new to this backfill, or None when the job is
        no longer this one (cancelled, or replaced by a newer backfill: its listing must stop).

        Each write is one transaction with a check that the job item is still this backfill, so a run that lost
        its job (cancelled and started again while it listed) can never leave items behind; and a key an earlier
        backfill had listed is taken over, so the newer one imports it. A page goes in ``PENDING_CHUNK`` keys to a
        transaction; only a chunk holding a key this backfill listed already (a page read again after a stop) is
        written again key by key, to count just the new ones."""
        added = 0
        for start in range(0, len(keys), PENDING_CHUNK):
            chunk = keys[start : start + PENDING_CHUNK]
            outcome = self._add_pending(job, chunk, now)
            if outcome is None:
                return None
            if outcome:
                added += len(chunk)
                continue
            for key in chunk:
                one = self._add_pending(job, [key], now)
                if one is None:
                    return None
                added += int(one)
        return added

    def _add_pending(self, job: BackfillJob, keys: list[str], now: int) -> bool | None:
        """True: every key written; False: some key was this backfill's already (nothing written); None: the job
        is another backfill's now."""
        # The job's ``total`` grows in the same transaction as its pending items: a step that dies before it moves
        # the cursor leaves a total that counts exactly what is pending (the page read again adds only new keys).
        check = {
            "Update": {
                "TableName": self.table_name,
                "Key": self._key(job.integration_id),
                "UpdateExpression": "ADD #total :n",
                "ConditionExpression": "backfill_id = :bf AND #state = :running",
                "ExpressionAttributeNames": {"#state": "state", "#total": "total"},
                "ExpressionAttributeValues": {
                    ":bf": to_value(job.backfill_id),
                    ":running": to_value("running"),
                    ":n": to_value(len(keys)),
                },
            }
        }
        puts = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": to_item(
                        {
                            "pk": pending_pk(job.integration_id),
                            "sk": key,
                            "backfill_id": job.backfill_id,
                            "ttl": now + PENDING_TTL_SECONDS,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk) OR backfill_id <> :bf",
                    "ExpressionAttributeValues": {":bf": to_value(job.backfill_id)},
                }
            }
            for key in keys
        ]
        try:
            dynamodb_client().transact_write_items(TransactItems=[check, *puts])  # type: ignore[list-item]
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return None  # the job is another backfill's now
            if "ConditionalCheckFailed" in reasons[1:]:
                return False  # listed already by this backfill (a page read again after a stop)
            raise
        return True

    def pending(self, job: BackfillJob, limit: int) -> list[str]:
        """Up to ``limit`` conversations of this backfill still to import, in key order; empty only when none is
        left. (DynamoDB applies ``Limit`` before the filter: a page of another backfill's leftovers can come back
        empty with more behind it, so the pages are followed.)"""
        keys: list[str] = []
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "FilterExpression": "backfill_id = :bf",
            "ExpressionAttributeValues": {
                ":pk": to_value(pending_pk(job.integration_id)),
                ":bf": to_value(job.backfill_id),
            },
            "ConsistentRead": True,
            "Limit": limit,
        }
        start: dict[str, Any] | None = None
        while len(keys) < limit:
            if start:
                query["ExclusiveStartKey"] = start
            response = dynamodb_client().query(**query)
            keys += [str(from_item(i)["sk"]) for i in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return keys[:limit]

    def settle(self, job: BackfillJob, key: str, counts: dict[str, int]) -> bool:
        """One conversation handled: count it and forget it in one transaction, so that a stop between the two
        can neither count it twice nor lose it. False when the backfill was cancelled or replaced meanwhile."""
        values = {":bf": to_value(job.backfill_id), ":running": to_value("running"), ":now": to_value(int(time.time()))}
        names = {"#state": "state"}
        adds = _counter_adds(counts, names, values)
        try:
            dynamodb_client().transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": self._key(job.integration_id),
                            "UpdateExpression": "SET updated_at = :now" + (f" ADD {adds}" if adds else ""),
                            "ConditionExpression": "backfill_id = :bf AND #state = :running",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values,
                        }
                    },
                    {
                        "Delete": {
                            "TableName": self.table_name,
                            "Key": {"pk": to_value(pending_pk(job.integration_id)), "sk": to_value(key)},
                        }
                    },
                ]
            )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                return False
            raise
        return True

    def clear_others(self, job: BackfillJob) -> None:
        """Forget what an earlier (cancelled) backfill of the integration left to import."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "FilterExpression": "backfill_id <> :bf",
            "ExpressionAttributeValues": {
                ":pk": to_value(pending_pk(job.integration_id)),
                ":bf": to_value(job.backfill_id),
            },
        }
        while True:
            page = dynamodb_client().query(**kwargs)
            for item in page.get("Items", []):
                dynamodb_client().delete_item(TableName=self.table_name, Key={"pk": item["pk"], "sk": item["sk"]})
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

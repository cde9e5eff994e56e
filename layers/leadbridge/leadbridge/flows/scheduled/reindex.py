"""``make reindex STACK=<stack>``: once, after upgrading a stack from a version without the ``scheduled-work`` index.

Settings and backfills written before that version carry no ``work_shard``, so the planner never finds them. This
walks the integrations table once (a Scan: an operator's one-off command, never a schedule) and gives each active
integration's settings and each running backfill its shard. Running it again changes nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from botocore.exceptions import ClientError

from leadbridge.aws.store.dynamo import dynamodb_client, from_item, to_value
from leadbridge.aws.store.work_index import work_shard

SETTINGS_SK = "SETTINGS"
BACKFILL_SK = "BACKFILL"


def reindex(table_name: str) -> dict[str, int]:
    """Give every active settings item and running backfill without a ``work_shard`` its shard; returns counts."""
    counts = {"settings": 0, "backfills": 0}
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "FilterExpression": "(sk = :settings OR sk = :backfill) AND attribute_not_exists(work_shard)",
        "ExpressionAttributeValues": {":settings": to_value(SETTINGS_SK), ":backfill": to_value(BACKFILL_SK)},
        "ProjectionExpression": "pk, sk, integration_id, active, #s",
        "ExpressionAttributeNames": {"#s": "state"},
    }
    while True:
        page = dynamodb_client().scan(**kwargs)
        for raw in page.get("Items", []):
            item = from_item(raw)
            integration_id = str(item.get("integration_id") or str(item["pk"]).removeprefix("INTEGRATION#"))
            if item["sk"] == SETTINGS_SK and item.get("active", True):
                counts["settings"] += _set_shard(table_name, raw, work_shard("active", integration_id), None)
            elif item["sk"] == BACKFILL_SK and item.get("state") == "running":
                counts["backfills"] += _set_shard(table_name, raw, work_shard("backfill", integration_id), "running")
        if "LastEvaluatedKey" not in page:
            return counts
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _set_shard(table_name: str, raw: dict[str, Any], shard: str, state: str | None) -> int:
    """One conditional write: only while the item is still what was read (active, or a running backfill)."""
    condition = "attribute_exists(pk) AND attribute_not_exists(work_shard)"
    values: dict[str, Any] = {":shard": to_value(shard)}
    names: dict[str, str] = {}
    if state is None:
        condition += " AND (attribute_not_exists(active) OR active = :true)"
        values[":true"] = to_value(True)
    else:
        condition += " AND #s = :state"
        values[":state"] = to_value(state)
        names["#s"] = "state"
    try:
        dynamodb_client().update_item(
            TableName=table_name,
            Key={"pk": raw["pk"], "sk": raw["sk"]},
            UpdateExpression="SET work_shard = :shard",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": names} if names else {}),  # type: ignore[arg-type]
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return 0  # changed since it was read: whoever changed it wrote its shard (or it is no longer active)
        raise
    return 1


def main(argv: list[str] | None = None) -> int:
    from leadbridge.aws.stack import stack_table  # noqa: PLC0415 - the operators' stack lookup

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stack", required=True, help="the CloudFormation stack's name")
    args = parser.parse_args(argv)
    counts = reindex(stack_table(args.stack))
    print(f"indexed {counts['settings']} active integrations and {counts['backfills']} running backfills")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The CRMs' shared request budgets in DynamoDB (``LimitsTable``): one item per budget, ``tat`` changed only by
compare-and-set. A lost race costs one more write: the failed write returns the item it found."""

from __future__ import annotations

from decimal import Decimal

from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.store.dynamo import dynamodb_client
from leadbridge.http.ratelimit import StateUnavailable


def _number(value: float) -> str:
    return str(Decimal(value).quantize(Decimal("0.000001")))


class DynamoLimitState:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def swap(self, key: str, expected: float | None, new: float) -> float | None:
        condition = "attribute_not_exists(limit_key)" if expected is None else "tat = :old"
        values = {":new": {"N": _number(new)}}
        if expected is not None:
            values[":old"] = {"N": _number(expected)}
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key={"limit_key": {"S": key}},
                UpdateExpression="SET tat = :new",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                found = exc.response.get("Item", {}).get("tat", {}).get("N")  # type: ignore[attr-defined]
                return float(found) if found is not None else 0.0
            raise StateUnavailable(type(exc).__name__) from exc
        except BotoCoreError as exc:
            raise StateUnavailable(type(exc).__name__) from exc
        return None

    def raise_to(self, key: str, value: float) -> None:
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key={"limit_key": {"S": key}},
                UpdateExpression="SET tat = :v",
                ConditionExpression="attribute_not_exists(limit_key) OR tat < :v",
                ExpressionAttributeValues={":v": {"N": _number(value)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StateUnavailable(type(exc).__name__) from exc
        except BotoCoreError as exc:
            raise StateUnavailable(type(exc).__name__) from exc

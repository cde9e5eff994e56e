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

    def advance(self, key: str, interval: float, now: float) -> float | None:
        try:
            answer = dynamodb_client().update_item(
                TableName=self.table_name,
                Key={"limit_key": {"S": key}},
                UpdateExpression="SET tat = tat + :interval",
                ConditionExpression="tat >= :now",
                ExpressionAttributeValues={":interval": {"N": _number(interval)}, ":now": {"N": _number(now)}},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise StateUnavailable(type(exc).__name__) from exc
        except BotoCoreError as exc:
            raise StateUnavailable(type(exc).__name__) from exc
        return float(answer["Attributes"]["tat"]["N"])

    def restart(self, key: str, now: float, new: float) -> float | None:
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key={"limit_key": {"S": key}},
                UpdateExpression="SET tat = :new",
                ConditionExpression="attribute_not_exists(limit_key) OR tat < :now",
                ExpressionAttributeValues={":new": {"N": _number(new)}, ":now": {"N": _number(now)}},
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

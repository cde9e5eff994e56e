"""The CRMs' shared request budgets in DynamoDB (``LimitsTable``): one item per budget, ``tat`` changed only by
conditional writes (``http/ratelimit.py``: a busy budget adds its interval, an idle one restarts from now)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.store.dynamo import condition_failed, dynamodb_client
from leadbridge.http.ratelimit import StateUnavailable


def _number(value: float) -> dict[str, str]:
    return {"N": str(Decimal(value).quantize(Decimal("0.000001")))}


class _Refused(Exception):
    """The write's condition did not hold; ``item``: what the store holds (when asked for)."""

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("condition failed")
        self.item = item


class DynamoLimitState:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def _update(self, key: str, expression: str, condition: str, values: dict[str, Any], **extra: Any) -> Any:
        try:
            return dynamodb_client().update_item(
                TableName=self.table_name,
                Key={"limit_key": {"S": key}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                **extra,
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise _Refused(dict(exc.response.get("Item", {}))) from exc  # type: ignore[call-overload]
            raise StateUnavailable(type(exc).__name__) from exc
        except BotoCoreError as exc:
            raise StateUnavailable(type(exc).__name__) from exc

    def advance(self, key: str, interval: float, now: float) -> float | None:
        values = {":interval": _number(interval), ":now": _number(now)}
        try:
            answer = self._update(key, "SET tat = tat + :interval", "tat >= :now", values, ReturnValues="UPDATED_NEW")
        except _Refused:
            return None
        return float(answer["Attributes"]["tat"]["N"])

    def restart(self, key: str, now: float, new: float) -> float | None:
        condition = "attribute_not_exists(limit_key) OR tat < :now"
        values = {":new": _number(new), ":now": _number(now)}
        try:
            self._update(key, "SET tat = :new", condition, values, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except _Refused as refused:
            found = refused.item.get("tat", {}).get("N")
            return float(found) if found is not None else 0.0
        return None

    def raise_to(self, key: str, value: float) -> None:
        try:
            self._update(key, "SET tat = :v", "attribute_not_exists(limit_key) OR tat < :v", {":v": _number(value)})
        except _Refused:
            return  # someone moved it further already

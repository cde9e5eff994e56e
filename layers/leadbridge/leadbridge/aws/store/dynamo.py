"""One boto3 DynamoDB client per process and the conversions between Python values and DynamoDB items."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from leadbridge.aws.request_count import counted

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@cache
def dynamodb_client() -> DynamoDBClient:
    """Created once per process; the endpoint comes from the standard ``AWS_ENDPOINT_URL`` when it is set."""
    return counted(boto3.client("dynamodb"))


def to_item(values: dict[str, Any]) -> dict[str, AttributeValueTypeDef]:
    """Serialize a dict, dropping None values (DynamoDB has no use for them) and turning floats into Decimals."""
    return {k: _serializer.serialize(_plain(v)) for k, v in values.items() if v is not None}


def to_value(value: Any) -> AttributeValueTypeDef:
    return _serializer.serialize(_plain(value))


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _python(_deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _python(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _python(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_python(v) for v in value]
    return value


def put_if_absent(table_name: str, item: dict[str, Any], key_attribute: str) -> bool:
    """Write ``item`` unless an item with its key exists; False when one did (the first write stays)."""
    try:
        dynamodb_client().put_item(
            TableName=table_name, Item=to_item(item), ConditionExpression=f"attribute_not_exists({key_attribute})"
        )
    except ClientError as exc:
        if condition_failed(exc):
            return False
        raise
    return True


def condition_failed(exc: ClientError) -> bool:
    """The write was refused because its condition did not hold (not a failure of DynamoDB)."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def update_if(table_name: str, key: dict[str, Any], expression: str, condition: str, values: dict[str, Any]) -> bool:
    """One conditional UpdateItem (``values``: already typed); False when its condition did not hold."""
    try:
        dynamodb_client().update_item(
            TableName=table_name,
            Key=key,
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if condition_failed(exc):
            return False
        raise
    return True


BATCH_GET_KEYS = 100  # BatchGetItem's limit per request


def batch_get(
    wanted: Mapping[str, Iterable[dict[str, Any]]],
    projections: Mapping[str, str] | None = None,
    consistent: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """The items (as DynamoDB types them) of ``wanted`` (table -> typed keys) that exist, by table: as few
    BatchGetItem requests as its 100 keys allow, whatever several tables ask, and the keys it leaves unprocessed
    asked again. ``projections``: table -> ProjectionExpression."""
    pairs = list(
        dict.fromkeys((table, json.dumps(key, sort_keys=True)) for table, keys in wanted.items() for key in keys)
    )
    found: dict[str, list[dict[str, Any]]] = {table: [] for table in wanted}
    for start in range(0, len(pairs), BATCH_GET_KEYS):
        request: dict[str, Any] = {}
        for table, key in pairs[start : start + BATCH_GET_KEYS]:
            entry = request.setdefault(table, {"Keys": [], "ConsistentRead": consistent})
            entry["Keys"].append(json.loads(key))
            if projections and table in projections:
                entry["ProjectionExpression"] = projections[table]
        while request:
            response = dynamodb_client().batch_get_item(RequestItems=request)
            for table, items in response.get("Responses", {}).items():
                found[table].extend(dict(item) for item in items)
            request = dict(response.get("UnprocessedKeys") or {})
    return found

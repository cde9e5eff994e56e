"""The local DynamoDB keeps a cancelled transaction's promise as DynamoDB does: nothing of it stays written (the
local stack copies only the items a transaction names for its rollback, not whole tables; see ``local/aws.py``)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from leadbridge_local.runner import LocalRunner


def test_a_cancelled_transaction_leaves_nothing_and_a_committed_one_everything(runner: LocalRunner) -> None:
    dynamodb = runner.stack.client("dynamodb")
    table = runner.stack.ref("IntegrationsTable")

    def key(pk: str, sk: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    dynamodb.put_item(TableName=table, Item={**key("TX#a", "1"), "v": {"N": "1"}})
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": key("TX#a", "1"),
                        "UpdateExpression": "SET v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {"Put": {"TableName": table, "Item": key("TX#b", "1")}},
                {"Put": {"TableName": table, "Item": key("TX#a", "2"), "ConditionExpression": "attribute_exists(pk)"}},
            ]
        )
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert dynamodb.get_item(TableName=table, Key=key("TX#a", "1"))["Item"]["v"] == {"N": "1"}
    assert "Item" not in dynamodb.get_item(TableName=table, Key=key("TX#b", "1"))
    assert "Item" not in dynamodb.get_item(TableName=table, Key=key("TX#a", "2"))

    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": key("TX#b", "1")}},
            {"Delete": {"TableName": table, "Key": key("TX#a", "1")}},
        ]
    )
    assert "Item" in dynamodb.get_item(TableName=table, Key=key("TX#b", "1"))
    assert "Item" not in dynamodb.get_item(TableName=table, Key=key("TX#a", "1"))

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


def test_an_update_expression_answers_the_same_each_time_it_is_sent(runner: LocalRunner) -> None:
    """The local DynamoDB parses each distinct UpdateExpression once and walks its tree by node class (``local/aws.py``):
    the same expression sent again, to other items and with other values, still does what DynamoDB does, and one it
    refuses is refused every time, not only the first."""
    dynamodb = runner.stack.client("dynamodb")
    table = runner.stack.ref("IntegrationsTable")
    expression = (
        "SET v = if_not_exists(v, :zero) + :step, tags = list_append(if_not_exists(tags, :none), :tag) ADD n :one"
    )
    for pk, step, tag in (("EXPR#a", "2", "x"), ("EXPR#a", "3", "y"), ("EXPR#b", "5", "z")):
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": pk}, "sk": {"S": "1"}},
            UpdateExpression=expression,
            ExpressionAttributeValues={
                ":zero": {"N": "0"},
                ":step": {"N": step},
                ":none": {"L": []},
                ":tag": {"L": [{"S": tag}]},
                ":one": {"N": "1"},
            },
        )
    a = dynamodb.get_item(TableName=table, Key={"pk": {"S": "EXPR#a"}, "sk": {"S": "1"}})["Item"]
    b = dynamodb.get_item(TableName=table, Key={"pk": {"S": "EXPR#b"}, "sk": {"S": "1"}})["Item"]
    assert (a["v"], a["tags"], a["n"]) == ({"N": "5"}, {"L": [{"S": "x"}, {"S": "y"}]}, {"N": "2"})
    assert (b["v"], b["tags"], b["n"]) == ({"N": "5"}, {"L": [{"S": "z"}]}, {"N": "1"})
    # Two actions on one path; a value the request does not give: each refused, and again the second time.
    for expression in ["SET v = :one, v = :one", "SET v = :missing"] * 2:
        with pytest.raises(ClientError) as refused:
            dynamodb.update_item(
                TableName=table,
                Key={"pk": {"S": "EXPR#a"}, "sk": {"S": "1"}},
                UpdateExpression=expression,
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        assert refused.value.response["Error"]["Code"] == "ValidationException"

"""Which integration an amojo ``scope_id`` belongs to (the replies hook has only the scope in its URL):
``pk = CHATSCOPE#<scope_id>``, ``sk = SCOPE`` in the integrations table, written on connect, deleted on
disconnect.

A scope is ``{channel}_{account}``: one per amoCRM account for the stack's one channel. So one integration per
account may hold the channel (``pk = CHATACCOUNT#<account id>``, claimed when it asks to connect, released when
its disconnect is done); a second integration on the same account is refused, never re-pointed (its visitors would
land in the first one's chats, the first one's replies go to it)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from leadbridge.aws.store.dynamo import dynamodb_client, from_item, to_item

SCOPE_SK = "SCOPE"
ACCOUNT_SK = "CHANNEL"


def account_pk(account_id: str) -> str:
    return f"CHATACCOUNT#{account_id}"


def scope_pk(scope_id: str) -> str:
    return f"CHATSCOPE#{scope_id}"


class DynamoChatScopes:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def claim_account(self, account_id: str, integration_id: str) -> str | None:
        """Take the account's chat channel for the integration; None when it is (now) its own, else the integration
        that holds it."""
        key = {"pk": {"S": account_pk(account_id)}, "sk": {"S": ACCOUNT_SK}}
        try:
            dynamodb_client().put_item(
                TableName=self.table_name,
                Item={**key, "integration_id": {"S": integration_id}},
                ConditionExpression="attribute_not_exists(pk) OR integration_id = :me",
                ExpressionAttributeValues={":me": {"S": integration_id}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            held = dynamodb_client().get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
            holder = from_item(held).get("integration_id") if held else None
            return (
                str(holder) if holder and holder != integration_id else self.claim_account(account_id, integration_id)
            )
        return None

    def release_account(self, account_id: str, integration_id: str) -> None:
        """The integration's disconnect is done: the account's channel is free (only if it held it)."""
        try:
            dynamodb_client().delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": account_pk(account_id)}, "sk": {"S": ACCOUNT_SK}},
                ConditionExpression="integration_id = :me",
                ExpressionAttributeValues={":me": {"S": integration_id}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def put(self, scope_id: str, integration_id: str) -> None:
        item = {"pk": scope_pk(scope_id), "sk": SCOPE_SK, "integration_id": integration_id}
        dynamodb_client().put_item(TableName=self.table_name, Item=to_item(item))

    def integration_of(self, scope_id: str) -> str | None:
        item = (
            dynamodb_client()
            .get_item(TableName=self.table_name, Key={"pk": {"S": scope_pk(scope_id)}, "sk": {"S": SCOPE_SK}})
            .get("Item")
        )
        found = from_item(item).get("integration_id") if item else None
        return found if isinstance(found, str) else None

    def delete(self, scope_id: str) -> None:
        dynamodb_client().delete_item(
            TableName=self.table_name, Key={"pk": {"S": scope_pk(scope_id)}, "sk": {"S": SCOPE_SK}}
        )

"""Which integration an amojo ``scope_id`` belongs to (the replies hook has only the scope in its URL):
``pk = CHATSCOPE#<scope_id>``, ``sk = SCOPE`` in the integrations table, written on connect, deleted on
disconnect."""

from __future__ import annotations

from leadbridge.store.dynamo import dynamodb_client, from_item, to_item

SCOPE_SK = "SCOPE"


def scope_pk(scope_id: str) -> str:
    return f"CHATSCOPE#{scope_id}"


class DynamoChatScopes:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

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

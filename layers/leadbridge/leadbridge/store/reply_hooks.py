"""The amojo reply hooks already taken, by message id, for as long as a repeat could still pass the age check.

amojo sends each hook once; a repeat is a replay (a captured signed body sent again). SQS's FIFO dedup forgets
after 5 minutes, so the hook keeps its own record: one item per reply in the ledger table
(``amojo:<scope>#reply:<message id>``), expiring with the hook's acceptance window.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from leadbridge.store.dynamo import dynamodb_client, to_item


def reply_key(scope_id: str, message_id: str) -> str:
    return f"amojo:{scope_id}#reply:{message_id}"


class DynamoReplyHooks:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def first_delivery(self, scope_id: str, message_id: str, keep_until: int) -> bool:
        """Record the reply as taken; False when it was taken before (a repeat)."""
        item = {"lead_key": reply_key(scope_id, message_id), "ttl": keep_until}
        try:
            dynamodb_client().put_item(
                TableName=self.table_name, Item=to_item(item), ConditionExpression="attribute_not_exists(lead_key)"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

"""The amojo reply hooks already taken, by message id, for as long as a repeat could still pass the age check.

amojo sends each hook once; a repeat is a replay (a captured signed body sent again). SQS's FIFO dedup forgets
after 5 minutes, so the hook keeps its own record: one item per reply in the ledger table
(``amojo:<scope>#reply:<message id>``), expiring with the hook's acceptance window.
"""

from __future__ import annotations

from leadbridge.aws.store.dynamo import dynamodb_client, put_if_absent


def reply_key(scope_id: str, message_id: str) -> str:
    return f"amojo:{scope_id}#reply:{message_id}"


class DynamoReplyHooks:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def first_delivery(self, scope_id: str, message_id: str, keep_until: int) -> bool:
        """Record the reply as taken; False when it was taken before (a repeat)."""
        return put_if_absent(
            self.table_name, {"lead_key": reply_key(scope_id, message_id), "ttl": keep_until}, "lead_key"
        )

    def forget(self, scope_id: str, message_id: str) -> None:
        """The reply was not taken after all (the queue refused it): a later delivery of it is no repeat."""
        dynamodb_client().delete_item(
            TableName=self.table_name, Key={"lead_key": {"S": reply_key(scope_id, message_id)}}
        )

"""The site chat's bookkeeping in the ledger table, for the ledger's retention:

- ``amocrm:<account>:site_chat:<conversation>#amojo``: the amojo chat of a cabinet conversation;
- ``amocrm:<account>:amojo_chat:<chat uuid>``: the conversation of an amojo chat (how a talk webhook of the
  channel finds the site chat's lead, to join it rather than double it);
- ``amocrm:<account>:site_chat_message:<message id>#sent``: a visitor message amojo took (a redelivery skips it).
"""

from __future__ import annotations

import time
from typing import Any

from leadbridge.aws.store.dynamo import dynamodb_client, from_item, to_item


class DynamoSiteChats:
    def __init__(self, table_name: str, retention_days: int) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_days * 86_400

    def chat_of(self, account: str, conversation: str) -> str | None:
        found = self._get(f"amocrm:{account}:site_chat:{conversation}#amojo").get("chat_id")
        return found if isinstance(found, str) else None

    def conversation_of_chat(self, account: str, chat_id: str) -> str | None:
        found = self._get(f"amocrm:{account}:amojo_chat:{chat_id}").get("conversation")
        return found if isinstance(found, str) else None

    def remember_chat(self, account: str, conversation: str, chat_id: str) -> None:
        self._set(f"amocrm:{account}:site_chat:{conversation}#amojo", {"chat_id": chat_id})
        self._set(f"amocrm:{account}:amojo_chat:{chat_id}", {"conversation": conversation})

    def was_sent(self, account: str, message_id: str) -> bool:
        return bool(self._get(f"amocrm:{account}:site_chat_message:{message_id}#sent"))

    def mark_sent(self, account: str, message_id: str, amojo_msgid: str | None) -> None:
        self._set(f"amocrm:{account}:site_chat_message:{message_id}#sent", {"amojo_msgid": amojo_msgid or ""})

    def _get(self, key: str) -> dict[str, Any]:
        item = (
            dynamodb_client()
            .get_item(TableName=self.table_name, Key={"lead_key": {"S": key}}, ConsistentRead=True)
            .get("Item")
        )
        return from_item(item) if item else {}

    def _set(self, key: str, values: dict[str, Any]) -> None:
        values = {**values, "ttl": int(time.time()) + self.retention_seconds}
        names = {f"#a{i}": name for i, name in enumerate(values)}
        dynamodb_client().update_item(
            TableName=self.table_name,
            Key={"lead_key": {"S": key}},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item({f":v{i}": value for i, value in enumerate(values.values())}),
        )

"""Analytics sessions that amoCRM's Salesbot handed over for a lead (``widget_request``), kept for the ledger's
retention: one item per lead in the ledger table (``lead_key = amocrm:<account>:lead:<id>#session``).

The Salesbot hook writes it; the worker reads it for the leads of its batch with the batch's first read and prefers
it to the custom field. The first session given for a lead stays (a bot run again later does not re-attribute the lead).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from leadbridge.aws.store.dynamo import batch_get, dynamodb_client, from_item, put_if_absent
from leadbridge.aws.store.read_ahead import NOT_READ_AHEAD, NotReadAhead, ReadAhead


def session_key(account: str, lead_id: str) -> str:
    return f"amocrm:{account}:lead:{lead_id}#session"


def token_key(account: str, token_id: str) -> str:
    return f"amocrm:{account}#bot-token:{token_id}"


class DynamoBotSessions:
    def __init__(self, table_name: str, retention_days: int, read_ahead: ReadAhead | None = None) -> None:
        """``read_ahead``: the worker's batch reads (``store/read_ahead.py``): the batch's sessions with its first
        read."""
        self.table_name = table_name
        self.retention_seconds = retention_days * 86_400
        self.read_ahead = read_ahead

    def keep(self, account: str, lead_id: str, session_id: str, talk_id: str | None = None) -> bool:
        """Store the lead's session; False when it had one already (that one stays)."""
        item = {
            "lead_key": session_key(account, lead_id),
            "session_id": session_id,
            "talk_id": talk_id,
            "stored_at": int(time.time()),
            "ttl": int(time.time()) + self.retention_seconds,
        }
        return put_if_absent(self.table_name, item, "lead_key")

    def first_use(self, account: str, token_id: str, expires_at: int) -> bool:
        """Record a Salesbot token as used; False when it was used before (a replay). Kept until the token could
        no longer pass its expiry check anyway."""
        return put_if_absent(
            self.table_name, {"lead_key": token_key(account, token_id), "ttl": expires_at + 120}, "lead_key"
        )

    def forget_use(self, account: str, token_id: str) -> None:
        """The request could not be taken (the inbox did not answer): amoCRM may send the same token again."""
        dynamodb_client().delete_item(TableName=self.table_name, Key={"lead_key": {"S": token_key(account, token_id)}})

    def for_leads(self, account: str, lead_ids: list[str]) -> dict[str, str]:
        """lead id -> session id, for those of ``lead_ids`` that have one (one request per 100 leads)."""
        return self.for_accounts({account: lead_ids}).get(account, {})

    def for_accounts(self, lead_ids: Mapping[str, Iterable[str]]) -> dict[str, dict[str, str]]:
        """account -> lead id -> session id, for the leads (by account) that have one: every account's in one
        request per 100 leads (``dynamo.batch_get``)."""
        found: dict[str, dict[str, str]] = {}
        wanted = {
            session_key(account, lead_id): (account, lead_id) for account, ids in lead_ids.items() for lead_id in ids
        }
        keys = [{"lead_key": {"S": key}} for key in sorted(wanted)]
        items, unread = [], []
        for key in keys:
            ahead = self.read_ahead.take(self.table_name, key) if self.read_ahead is not None else NOT_READ_AHEAD
            if isinstance(ahead, NotReadAhead):
                unread.append(key)
            elif ahead is not None:
                items.append(ahead)
        if unread:
            items += batch_get({self.table_name: unread})[self.table_name]
        for raw in items:
            record = from_item(raw)
            account, lead_id = wanted[str(record["lead_key"])]
            if isinstance(record.get("session_id"), str):
                found.setdefault(account, {})[lead_id] = record["session_id"]
        return found

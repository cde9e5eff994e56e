"""OAuth tokens of one integration, in the integrations table (``pk = TOKEN#<id>``, ``sk = TOKEN``).

Their own partition, so that IAM can keep the functions that never call a CRM (the hooks) away from them
(``dynamodb:LeadingKeys``). Token items never carry the table's ``ttl`` attribute: DynamoDB would delete a refresh
token that outlives its access token. Refresh tokens of both CRMs are single-use, so the item is never
overwritten blindly: a refresh first takes a lease (a conditional write), and saves the new pair as a
compare-and-swap on ``version``. Items that the refresher must look at carry ``refresh_shard`` /
``refresh_due_at`` for the sparse ``tokens-by-refresh-due`` index; dead or long-lived tokens carry neither.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

from leadbridge.aws.store.dynamo import dynamodb_client, from_item, to_item, to_value
from leadbridge.aws.store.read_ahead import ReadAhead, read_item, written

TOKEN_PK_PREFIX = "TOKEN#"  # noqa: S105 - a key prefix, not a secret
TOKEN_SK = "TOKEN"  # noqa: S105 - a sort key, not a secret
REFRESH_INDEX = "tokens-by-refresh-due"
REFRESH_SHARD = "due"
TokenState = Literal["active", "reauth_required", "disconnected"]


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What a CRM's token endpoint gave us."""

    access_token: str
    refresh_token: str | None
    expires_at: int
    refresh_due_at: int | None  # None: never refreshed on schedule (long-lived tokens)
    extra: dict[str, str] = field(default_factory=dict)  # e.g. Bitrix24 client_endpoint, server_endpoint

    def __repr__(self) -> str:  # tokens must not reach logs through a repr
        return f"TokenSet(expires_at={self.expires_at}, has_refresh={self.refresh_token is not None})"


@dataclass(frozen=True, slots=True)
class StoredToken:
    integration_id: str
    crm: str
    tokens: TokenSet
    version: int
    state: TokenState
    lease_owner: str | None
    lease_until: int | None
    refreshed_at: int | None

    def __repr__(self) -> str:
        return f"StoredToken({self.integration_id}, v{self.version}, {self.state})"


class TokenConflict(Exception):
    """A conditional write lost: another process holds the lease or already saved a newer version."""


def token_pk(integration_id: str) -> str:
    return f"{TOKEN_PK_PREFIX}{integration_id}"


def token_key(integration_id: str) -> dict[str, Any]:
    return {"pk": {"S": token_pk(integration_id)}, "sk": {"S": TOKEN_SK}}


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoTokens:
    def __init__(self, table_name: str, read_ahead: ReadAhead | None = None) -> None:
        """``read_ahead``: the worker's batch reads (``store/read_ahead.py``), consulted before the table."""
        self.table_name = table_name
        self.read_ahead = read_ahead

    def _written(self, integration_id: str) -> dict[str, Any]:
        return written(self.read_ahead, self.table_name, token_key(integration_id))

    def read(self, integration_id: str) -> StoredToken | None:
        item = read_item(self.read_ahead, self.table_name, token_key(integration_id))
        return _stored(from_item(item)) if item else None

    def save_new(self, integration_id: str, crm: str, tokens: TokenSet) -> None:
        """First connect (or re-connect): a new grant replaces whatever was there."""
        previous = self.read(integration_id)
        record: dict[str, Any] = {
            "pk": token_pk(integration_id),
            "sk": TOKEN_SK,
            "integration_id": integration_id,
            "crm": crm,
            "token_version": (previous.version + 1) if previous else 1,
            "token_state": "active",
            "refreshed_at": int(time.time()),
            **_token_fields(tokens),
        }
        self._written(integration_id)
        dynamodb_client().put_item(TableName=self.table_name, Item=to_item(record))

    def try_lease(self, integration_id: str, version: int, owner: str, now: int, seconds: int) -> bool:
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key=self._written(integration_id),
                UpdateExpression="SET lease_owner = :o, lease_until = :u",
                ConditionExpression="token_version = :v AND (attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeValues=to_item({":o": owner, ":u": now + seconds, ":v": version, ":now": now}),
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def save_refreshed(self, integration_id: str, version: int, owner: str, tokens: TokenSet) -> None:
        """Compare-and-swap: only the lease holder, only on the version it refreshed from."""
        fields = _token_fields(tokens)
        sets = [f"{name} = :{name}" for name in fields]
        removes = ["lease_owner", "lease_until"]
        if "refresh_due_at" not in fields:
            removes += ["refresh_shard", "refresh_due_at"]
        if "refresh_token" not in fields:
            removes.append("refresh_token")
        values = {f":{name}": value for name, value in fields.items()}
        values.update({":v": version, ":next": version + 1, ":o": owner, ":now": int(time.time())})
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key=self._written(integration_id),
                UpdateExpression=f"SET {', '.join(sets)}, token_version = :next, refreshed_at = :now REMOVE {', '.join(removes)}",
                ConditionExpression="token_version = :v AND lease_owner = :o",
                ExpressionAttributeValues=to_item(values),
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                raise TokenConflict("token changed while refreshing") from exc
            raise

    def release(self, integration_id: str, owner: str) -> None:
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key=self._written(integration_id),
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :o",
                ExpressionAttributeValues={":o": to_value(owner)},
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise

    def set_state(self, integration_id: str, state: TokenState, reason: str) -> None:
        """reauth_required / disconnected: no more refreshes; the tokens are dropped (they are useless now)."""
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key=self._written(integration_id),
                UpdateExpression=(
                    "SET token_state = :s, state_reason = :r, token_version = token_version + :one "
                    "REMOVE access_token, refresh_token, refresh_shard, refresh_due_at, lease_owner, lease_until"
                ),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=to_item({":s": state, ":r": reason[:200], ":one": 1}),
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise

    def delete(self, integration_id: str) -> None:
        dynamodb_client().delete_item(TableName=self.table_name, Key=self._written(integration_id))

    def due(self, before: int, limit: int = 500) -> list[str]:
        """Integration ids whose tokens are due for refresh at ``before`` (an index query, never a Scan)."""
        found: list[str] = []
        cursor: dict[str, Any] | None = None
        while len(found) < limit:
            ids, cursor = self.due_page(before, cursor, limit - len(found))
            found.extend(ids)
            if cursor is None:
                break
        return found

    def due_page(
        self, before: int, cursor: dict[str, Any] | None, limit: int
    ) -> tuple[list[str], dict[str, Any] | None]:
        """One page of ``due``, and the cursor of the next one (None: no more)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": REFRESH_INDEX,
            "KeyConditionExpression": "refresh_shard = :s AND refresh_due_at <= :t",
            "ExpressionAttributeValues": to_item({":s": REFRESH_SHARD, ":t": before}),
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = cursor
        page = dynamodb_client().query(**kwargs)
        ids = [str(from_item(item)["pk"]).removeprefix(TOKEN_PK_PREFIX) for item in page.get("Items", [])]
        following = page.get("LastEvaluatedKey")
        return ids, (dict(following) if following else None)


def _token_fields(tokens: TokenSet) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "access_token": tokens.access_token,
        "access_expires_at": tokens.expires_at,  # never the table's TTL attribute
        "extra": tokens.extra,
    }
    if tokens.refresh_token is not None:
        fields["refresh_token"] = tokens.refresh_token
    if tokens.refresh_due_at is not None and tokens.refresh_token is not None:
        fields["refresh_due_at"] = tokens.refresh_due_at
        fields["refresh_shard"] = REFRESH_SHARD
    return fields


def _stored(record: dict[str, Any]) -> StoredToken:
    return StoredToken(
        integration_id=record["integration_id"],
        crm=record["crm"],
        tokens=TokenSet(
            access_token=record.get("access_token", ""),
            refresh_token=record.get("refresh_token"),
            expires_at=int(record.get("access_expires_at", 0)),
            refresh_due_at=record.get("refresh_due_at"),
            extra=dict(record.get("extra", {})),
        ),
        version=int(record["token_version"]),
        state=record.get("token_state", "active"),
        lease_owner=record.get("lease_owner"),
        lease_until=record.get("lease_until"),
        refreshed_at=record.get("refreshed_at"),
    )

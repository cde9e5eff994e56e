"""The lead ledger: one item per conversation (``crm:account:entity:id``), the dedup record and the audit trail.

States: ``in_progress`` (a worker holds it, until ``lease_until``), ``waiting`` / ``failed`` (an attempt did not
finish; the next one may claim it), ``parked`` (waiting for a person: re-authorization or an unblocked account; see
``parking``), ``emitted`` and ``skipped`` (final: every later event of the conversation is a duplicate). Claiming is one conditional write, so two workers can never both emit a conversation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from botocore.exceptions import ClientError

from leadbridge.aws.store.dynamo import batch_get, dynamodb_client, from_item, to_item

LedgerState = Literal["in_progress", "waiting", "failed", "parked", "emitted", "skipped"]
FINAL_STATES = frozenset({"emitted", "skipped"})
CLAIM_LEASE_SECONDS = 120  # longer than the worker's 60 s timeout
MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limit


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    lead_key: str
    state: LedgerState
    attempts: int
    first_seen_at: int
    lead_id: str | None = None
    last_error: str | None = None
    note_state: str | None = None
    crm_lead_id: str | None = None  # the CRM lead the emitted conversation was about (amoCRM)
    crm_lead_created_at: int | None = None  # and when the CRM created it


@dataclass(frozen=True, slots=True)
class Claimed:
    entry: LedgerEntry


@dataclass(frozen=True, slots=True)
class AlreadyFinal:
    entry: LedgerEntry


@dataclass(frozen=True, slots=True)
class HeldElsewhere:
    lease_until: int


ClaimResult = Claimed | AlreadyFinal | HeldElsewhere


@dataclass(frozen=True, slots=True)
class ClaimAsRead:
    """A conversation to claim as a batch's read showed it: its key and lead id, its other keys (key, lead id) to
    claim with it, and its item as read (``seen``; None when there was none)."""

    lead_key: str
    lead_id: str
    integration_id: str
    source: str
    seen: LedgerEntry | None
    others: tuple[tuple[str, str], ...] = ()


class DynamoLedger:
    def __init__(self, table_name: str, retention_days: int) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_days * 86400

    def _claim_update(self, lead_key: str, lead_id: str, integration_id: str, source: str, now: int) -> dict[str, Any]:
        """The conditional write that claims a conversation: it is new, or its last attempt did not finish."""
        return {
            "TableName": self.table_name,
            "Key": {"lead_key": {"S": lead_key}},
            "UpdateExpression": (
                "SET ledger_state = :busy, lease_until = :lease, lead_id = :lid, integration_id = :iid, "
                "first_seen_at = if_not_exists(first_seen_at, :now), first_source = if_not_exists(first_source, :src), "
                "last_attempt_at = :now, #ttl = :exp ADD attempts :one"
            ),
            "ConditionExpression": (
                "(attribute_not_exists(lead_key) OR ledger_state IN (:waiting, :failed, :parked) "
                "OR (ledger_state = :busy AND lease_until < :now))"
            ),
            "ExpressionAttributeNames": {"#ttl": "ttl"},  # a reserved word; the table's TTL attribute
            "ExpressionAttributeValues": to_item(
                {
                    ":busy": "in_progress",
                    ":waiting": "waiting",
                    ":failed": "failed",
                    ":parked": "parked",
                    ":lease": now + CLAIM_LEASE_SECONDS,
                    ":lid": lead_id,
                    ":iid": integration_id,
                    ":now": now,
                    ":src": source,
                    ":exp": now + self.retention_seconds,
                    ":one": 1,
                }
            ),
        }

    def claim(
        self, lead_key: str, lead_id: str, integration_id: str, source: str, now: int | None = None
    ) -> ClaimResult:
        now = int(now if now is not None else time.time())
        try:
            update = self._claim_update(lead_key, lead_id, integration_id, source, now)
            response = dynamodb_client().update_item(**update, ReturnValues="ALL_NEW")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            current = self.get(lead_key)
            if current is None:  # vanished between the two calls (TTL): try once more
                return self.claim(lead_key, lead_id, integration_id, source, now)
            if current.state in FINAL_STATES:
                return AlreadyFinal(current)
            return HeldElsewhere(lease_until=int(self._raw(lead_key).get("lease_until", now)))
        return Claimed(_entry(from_item(response["Attributes"])))

    def claim_each(self, claims: list[ClaimAsRead], now: int | None = None) -> list[Claimed] | None:
        """Claim conversations, each with its other keys, in one request, all or none. Each claim also requires its
        item to be as the batch read it (the same ``attempts``, which every claim adds to), so the entries it
        returns (in ``claims``' order) are known without reading them back. None, with nothing written, when any
        key is not claimable or changed since, or the keys do not fit one transaction: the caller claims one key
        at a time instead, which says why."""
        now = int(now if now is not None else time.time())
        items = []
        for claim in claims:
            own = self._claim_update(claim.lead_key, claim.lead_id, claim.integration_id, claim.source, now)
            if claim.seen is None:
                own["ConditionExpression"] = "attribute_not_exists(lead_key)"
            else:  # 0 attempts: none yet, or a claim let go unused (``unclaim``)
                as_read = (
                    "attempts = :seen"
                    if claim.seen.attempts
                    else "(attempts = :seen OR attribute_not_exists(attempts))"
                )
                own["ConditionExpression"] += f" AND {as_read}"
                own["ExpressionAttributeValues"][":seen"] = {"N": str(claim.seen.attempts)}
            items.append(own)
            items += [self._claim_update(k, lid, claim.integration_id, claim.source, now) for k, lid in claim.others]
        if not _all_or_none([{"Update": item} for item in items]):
            return None
        claimed = []
        for claim in claims:
            before = claim.seen or LedgerEntry(claim.lead_key, "in_progress", attempts=0, first_seen_at=now)
            entry = replace(before, state="in_progress", attempts=before.attempts + 1, lead_id=claim.lead_id)
            claimed.append(Claimed(replace(entry, first_seen_at=entry.first_seen_at or now)))  # as if_not_exists
        return claimed

    def unclaim(self, lead_keys: list[str], claimed_at: int) -> None:
        """Let go of claims ``claim_each`` took at ``claimed_at`` and nobody used (their events were handed back
        unhandled): claimable at once, and their ``attempts`` as before, so an event's first attempt stays its
        first. A key claimed since by someone else (another lease) is left alone."""
        for key in dict.fromkeys(lead_keys):
            try:
                dynamodb_client().update_item(
                    TableName=self.table_name,
                    Key={"lead_key": {"S": key}},
                    UpdateExpression="SET ledger_state = :failed, last_error = :why REMOVE lease_until ADD attempts :back",
                    ConditionExpression="ledger_state = :busy AND lease_until = :lease",
                    ExpressionAttributeValues=to_item(
                        {
                            ":failed": "failed",
                            ":why": "released unused",
                            ":back": -1,
                            ":busy": "in_progress",
                            ":lease": claimed_at + CLAIM_LEASE_SECONDS,
                        }
                    ),
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise

    def finish(self, lead_key: str, state: LedgerState, **fields: Any) -> None:
        """Record the outcome of the attempt that holds the claim."""
        self.finish_all([lead_key], state, **fields)

    def finish_all(self, lead_keys: list[str], state: LedgerState, **fields: Any) -> None:
        """The same outcome for every key one attempt claimed (a Bitrix24 lead and its session): one request, all
        or none, so no key of a conversation can say ``emitted`` while another still holds the claim."""
        update = self._finish_update(state, fields)
        keys = list(dict.fromkeys(lead_keys))
        if len(keys) == 1:
            dynamodb_client().update_item(Key={"lead_key": {"S": keys[0]}}, **update)
            return
        items = [{"Update": {"Key": {"lead_key": {"S": key}}, **update}} for key in keys]
        dynamodb_client().transact_write_items(TransactItems=items)  # type: ignore[arg-type]

    def finish_each(self, outcomes: list[tuple[list[str], LedgerState, dict[str, Any]]]) -> bool:
        """Several attempts' outcomes (a batch's leads, each with its conversation's keys and its own fields) in one
        request, all or none. False, with nothing written, when they do not fit one transaction or it was refused
        as a whole (another write to one of its items at that moment): the caller records each one apart."""
        items = [
            {"Update": {"Key": {"lead_key": {"S": key}}, **self._finish_update(state, fields)}}
            for keys, state, fields in outcomes
            for key in dict.fromkeys(keys)
        ]
        return len(items) > 1 and _all_or_none(items)

    def _finish_update(self, state: LedgerState, fields: dict[str, Any]) -> dict[str, Any]:
        """The write that ends an attempt: its state, when, ``fields`` (those set), and no lease any more."""
        values: dict[str, Any] = {":s": state, ":now": int(time.time())}
        sets = ["ledger_state = :s", "finished_at = :now"]
        for name, value in fields.items():
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value[:500] if isinstance(value, str) else value
        return {
            "TableName": self.table_name,
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE lease_until",
            "ExpressionAttributeValues": to_item(values),
        }

    def set_fields(self, lead_key: str, **fields: Any) -> None:
        dynamodb_client().update_item(TableName=self.table_name, Key={"lead_key": {"S": lead_key}}, **_set(fields))

    def set_each(self, changes: list[tuple[str, dict[str, Any]]]) -> None:
        """Bookkeeping for many conversations after their leads are out (amoCRM's note states): one request per
        100; a transaction refused as a whole (another write to one of its items at that moment) is written item
        by item instead."""
        latest = dict(changes)  # one change per item: a transaction may not name an item twice
        pending = list(latest.items())
        for start in range(0, len(pending), MAX_TRANSACTION_ITEMS):
            chunk = pending[start : start + MAX_TRANSACTION_ITEMS]
            items = [
                {"Update": {"TableName": self.table_name, "Key": {"lead_key": {"S": key}}, **_set(fields)}}
                for key, fields in chunk
            ]
            if len(chunk) > 1 and _all_or_none(items):
                continue
            for key, fields in chunk:
                self.set_fields(key, **fields)

    def get(self, lead_key: str) -> LedgerEntry | None:
        raw = self._raw(lead_key)
        return _entry(raw) if raw else None

    def seen(self, lead_keys: list[str]) -> set[str]:
        """Which of these conversations the ledger knows, in any state (for the reconciliation sweep)."""
        return set(self._states(lead_keys))

    def finished(self, lead_keys: list[str]) -> set[str]:
        """Which of these conversations are final (emitted or skipped): the worker reads nothing for them."""
        return {key for key, state in self._states(lead_keys).items() if state in FINAL_STATES}

    def _states(self, lead_keys: list[str]) -> dict[str, str]:
        keys = [{"lead_key": {"S": key}} for key in lead_keys]
        items = batch_get({self.table_name: keys}, {self.table_name: STATE_PROJECTION}, consistent=False)
        return states_of(items[self.table_name])

    def _raw(self, lead_key: str) -> dict[str, Any]:
        item = dynamodb_client().get_item(
            TableName=self.table_name, Key={"lead_key": {"S": lead_key}}, ConsistentRead=True
        )
        return from_item(item["Item"]) if "Item" in item else {}


STATE_PROJECTION = "lead_key, ledger_state"
# What a claim's entry holds (``LedgerEntry``), for a batch's read ahead of its claims.
ENTRY_PROJECTION = (
    "lead_key, ledger_state, attempts, first_seen_at, lead_id, last_error, note_state, crm_lead_id, crm_lead_created_at"
)


def entries_of(items: list[dict[str, Any]]) -> dict[str, LedgerEntry]:
    """lead key -> entry, of ledger items as DynamoDB types them (read with ``ENTRY_PROJECTION``)."""
    return {entry.lead_key: entry for entry in (_entry(from_item(item)) for item in items)}


def states_of(items: list[dict[str, Any]]) -> dict[str, str]:
    """lead key -> ledger state, of ledger items as DynamoDB types them (read with ``STATE_PROJECTION``)."""
    return {item["lead_key"]["S"]: item.get("ledger_state", {}).get("S", "") for item in items}


def _all_or_none(items: list[dict[str, Any]]) -> bool:
    """Write ``items`` (a transaction's ``Update`` actions on the ledger) in one request. False, with nothing written,
    when they cannot be one transaction (none, more than its limit, an item named twice) or DynamoDB refused it as a
    whole (a condition, another write to one of its items at that moment, throttling): the caller goes one by one."""
    named = [item["Update"]["Key"]["lead_key"]["S"] for item in items]
    if not named or len(named) > MAX_TRANSACTION_ITEMS or len(set(named)) < len(named):
        return False
    try:
        dynamodb_client().transact_write_items(TransactItems=items)  # type: ignore[arg-type]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        return False
    return True


def _set(fields: dict[str, Any]) -> dict[str, Any]:
    """An UpdateItem's expression and values that set ``fields``."""
    return {
        "UpdateExpression": "SET " + ", ".join(f"{name} = :{name}" for name in fields),
        "ExpressionAttributeValues": to_item({f":{name}": value for name, value in fields.items()}),
    }


def _entry(record: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        lead_key=record["lead_key"],
        state=record.get("ledger_state", "failed"),
        attempts=int(record.get("attempts", 0)),
        first_seen_at=int(record.get("first_seen_at", 0)),
        lead_id=record.get("lead_id"),
        last_error=record.get("last_error"),
        note_state=record.get("note_state"),
        crm_lead_id=record.get("crm_lead_id"),
        crm_lead_created_at=record.get("crm_lead_created_at"),
    )

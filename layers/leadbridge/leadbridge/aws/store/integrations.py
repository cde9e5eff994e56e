"""Integrations in the integrations table: the settings item, and the status item the pipeline updates.

Layout of one integration's partition (``pk = INTEGRATION#<id>``):
    sk = SETTINGS   what people set (through the integrations API)
    sk = STATUS     connection state, last event / lead / error, counters (written by the pipeline)
    sk = TOKEN      OAuth tokens (see ``store.tokens``)
Settings and status are separate items so that saving settings never overwrites what the pipeline counted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from decimal import Decimal
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.store.dynamo import dynamodb_client, from_item, to_item
from leadbridge.aws.store.read_ahead import ReadAhead, read_item, written
from leadbridge.aws.store.work_index import work_shard
from leadbridge.contract.integration import ConnectionState, Integration, SessionField, TrafficTarget
from leadbridge.http.ratelimit import OncePer

Outcome = Literal["accepted", "emitted", "skipped", "failed", "parked"]
SETTINGS_SK = "SETTINGS"
STATUS_SK = "STATUS"


LIST_MAX_READS = 5
SAFE_NAME = re.compile(r"[^A-Za-z0-9_]")


def settings_key(integration_id: str) -> dict[str, Any]:
    return {"pk": {"S": integration_pk(integration_id)}, "sk": {"S": SETTINGS_SK}}


def status_key(integration_id: str) -> dict[str, Any]:
    return {"pk": {"S": integration_pk(integration_id)}, "sk": {"S": STATUS_SK}}


def integration_pk(integration_id: str) -> str:
    return f"INTEGRATION#{integration_id}"


class IntegrationRepository(Protocol):
    def get(self, integration_id: str) -> Integration | None: ...

    def put(self, integration: Integration) -> None: ...


class DynamoIntegrations:
    """The integrations table. One instance per process; it holds no per-request state."""

    def __init__(self, table_name: str, read_ahead: ReadAhead | None = None) -> None:
        """``read_ahead``: the worker's batch reads (``store/read_ahead.py``), consulted before the table."""
        self.table_name = table_name
        self.read_ahead = read_ahead

    def get(self, integration_id: str) -> Integration | None:
        item = self._read(settings_key(integration_id))
        return integration_from_record(from_item(item)) if item else None

    def _read(self, key: dict[str, Any]) -> dict[str, Any] | None:
        return read_item(self.read_ahead, self.table_name, key)

    def _written(self, key: dict[str, Any]) -> dict[str, Any]:
        return written(self.read_ahead, self.table_name, key)

    def put(self, integration: Integration) -> None:
        self._written(settings_key(integration.integration_id))
        record = integration_to_record(integration)
        record.update(pk=integration_pk(integration.integration_id), sk=SETTINGS_SK, updated_at=int(time.time()))
        if integration.active:  # in the scheduled-work index while active (store/work_index.py)
            record["work_shard"] = work_shard("active", integration.integration_id)
        dynamodb_client().put_item(TableName=self.table_name, Item=to_item(record))

    def list_page(
        self, limit: int, start: Mapping[str, str] | None = None, max_reads: int = LIST_MAX_READS
    ) -> tuple[list[Integration], dict[str, str] | None]:
        """Up to ``limit`` integrations' settings from ``start`` (a key this method returned), and the key to go on
        from (None at the end). A filtered Scan, read by people through ``GET /integrations`` one page a request,
        never on a schedule or a webhook's path (they page through ``store/work_index.py``): a request reads at most
        ``max_reads`` Scan pages of 1 MB, whatever the table holds, and hands back where it stopped."""
        found: list[Integration] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "sk = :s",
            "ExpressionAttributeValues": {":s": {"S": SETTINGS_SK}},
        }
        if start is not None:
            kwargs["ExclusiveStartKey"] = {"pk": {"S": start["pk"]}, "sk": {"S": start["sk"]}}
        for _ in range(max_reads):
            kwargs["Limit"] = max(limit - len(found), 1) * 4  # most items are not settings (status, tokens...)
            page = dynamodb_client().scan(**kwargs)
            items = page.get("Items", [])
            for index, item in enumerate(items):
                if len(found) == limit:  # full: go on from the last one taken
                    last = items[index - 1]
                    return found, {"pk": last["pk"]["S"], "sk": last["sk"]["S"]}
                found.append(integration_from_record(from_item(item)))
            following = page.get("LastEvaluatedKey")
            if following is None:
                return found, None
            kwargs["ExclusiveStartKey"] = following
            if len(found) == limit:
                break
        key = kwargs["ExclusiveStartKey"]
        return found, {"pk": key["pk"]["S"], "sk": key["sk"]["S"]}

    def record_account(self, integration_id: str, account_id: str, crm_domain: str) -> None:
        """Remember the CRM account an integration connected to (first connect, or a domain rename)."""
        dynamodb_client().update_item(
            TableName=self.table_name,
            Key=self._written(settings_key(integration_id)),
            UpdateExpression="SET account_id = :a, crm_domain = :d",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":a": {"S": account_id}, ":d": {"S": crm_domain}},
        )

    def record_portal_moved(self, integration_id: str, account_id: str, old_domain: str, new_domain: str) -> None:
        """A Bitrix24 portal's old address redirected its REST to a new one: the settings take the new domain, and
        the status says so (``portal_moved``: from, to) for the admin who renamed it."""
        self.record_account(integration_id, account_id, new_domain)
        self._update_status("SET portal_moved = :m", {":m": {"from": old_domain, "to": new_domain}}, integration_id)

    def consume_state(self, integration_id: str, nonce: str, expires_at: int) -> bool:
        """Record an OAuth state's nonce as used; False when it already was (a replay)."""
        try:
            dynamodb_client().put_item(
                TableName=self.table_name,
                Item=to_item({"pk": integration_pk(integration_id), "sk": f"STATE#{nonce}", "ttl": expires_at}),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_connection_state(self, integration_id: str, state: ConnectionState, reason: str | None = None) -> None:
        values: dict[str, Any] = {":s": state, ":now": int(time.time())}
        expression = "SET connection_state = :s, connection_changed_at = :now"
        if reason is not None:
            expression += ", last_error = :r, last_error_at = :now"
            values[":r"] = reason[:500]
        self._update_status(expression, values, integration_id)

    def record_outcome(self, integration_id: str, outcome: Outcome, error: str | None = None) -> None:
        self.record_outcomes(integration_id, {outcome: 1}, error)

    def record_outcomes(
        self,
        integration_id: str,
        counts: Mapping[Outcome, int],
        error: str | None = None,
        unknown_channels: set[str] | None = None,
        notices: set[str] | None = None,
        delivered_at: float | None = None,
    ) -> None:
        """Add to the status counters (and the sets of unknown channel values and notices) in one write;
        ``delivered_at``: the latest delivery of the hook among the events counted (``last_webhook_at``)."""
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            if delivered_at is not None:
                self.record_delivery(integration_id, delivered_at)
            return
        values: dict[str, Any] = {":now": int(time.time())}
        adds, sets = [], []
        if delivered_at is not None:
            sets.append("last_webhook_at = :delivered")
            values[":delivered"] = Decimal(str(round(delivered_at, 3)))
        for outcome, count in counts.items():
            adds.append(f"count_{outcome} :n_{outcome}")
            sets.append(f"last_{_LAST[outcome]}_at = :now")
            values[f":n_{outcome}"] = count
        if counts.get("emitted"):  # a lead came out, so the CRM answers: whatever blocked it is over
            sets.append("connection_state = :connected")
            values[":connected"] = "connected"
        if error is not None:
            sets.append("last_error = :e, last_error_at = :now")
            values[":e"] = error[:500]
        if unknown_channels:
            adds.append("unknown_channels :unknown")
            values[":unknown"] = {c[:100] for c in unknown_channels}
        if notices:
            adds.append("notices :notices")
            values[":notices"] = {n[:100] for n in notices}
        self._update_status(f"ADD {', '.join(adds)} SET {', '.join(sets)}", values, integration_id)

    def record_delivery(self, integration_id: str, delivered_at: float) -> None:
        """A delivery the hook took, stamped by the worker that handled its events (``last_webhook_at``)."""
        self._update_status("SET last_webhook_at = :d", {":d": Decimal(str(round(delivered_at, 3)))}, integration_id)

    def take_lease(self, integration_id: str, name: str, now: int, seconds: int) -> bool:
        """One holder at a time of the integration's ``name`` lease (resume, sweep): False while another one's
        lease runs. A holder that dies leaves it to lapse after ``seconds``."""
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key=self._written(status_key(integration_id)),
                UpdateExpression="SET #lease = :until",
                ConditionExpression="attribute_not_exists(#lease) OR #lease < :now",
                ExpressionAttributeNames={"#lease": f"{name}_lease_until"},
                ExpressionAttributeValues=to_item({":until": now + seconds, ":now": now}),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_lease(self, integration_id: str, name: str) -> None:
        dynamodb_client().update_item(
            TableName=self.table_name,
            Key=self._written(status_key(integration_id)),
            UpdateExpression="SET #lease = :zero",
            ExpressionAttributeNames={"#lease": f"{name}_lease_until"},
            ExpressionAttributeValues={":zero": {"N": "0"}},
        )

    def take_resume_lease(self, integration_id: str, now: int, seconds: int) -> bool:
        """One resume at a time per integration: False while another one's lease runs."""
        return self.take_lease(integration_id, "resume", now, seconds)

    def release_resume_lease(self, integration_id: str) -> None:
        self.release_lease(integration_id, "resume")

    def record_dropped(self, integration_id: str, counts: dict[str, int]) -> None:
        """Webhook items the hook could not use, counted by why (``dropped_<reason>``: the hook's own reasons)."""
        counts = {reason: n for reason, n in counts.items() if n and reason.replace("_", "").isalnum()}
        if not counts:
            return
        values: dict[str, Any] = {":now": int(time.time())}
        adds = []
        for reason, count in counts.items():
            adds.append(f"dropped_{reason} :d_{reason}")
            values[f":d_{reason}"] = count
        self._update_status(f"ADD {', '.join(adds)} SET last_dropped_at = :now", values, integration_id)

    def record_connect(
        self, integration_id: str, failure: str | None = None, missing_scopes: list[str] | None = None
    ) -> None:
        """The OAuth callback's outcome for the checklist: a failed connect keeps its reason (``last_connect_failure``
        and ``last_error``); a good one clears it and says which needed scopes the grant lacks."""
        now = int(time.time())
        if failure is not None:
            reason = f"connect failed: {failure}"[:200]
            self._update_status(
                "SET last_connect_failure = :f, last_error = :r, last_error_at = :now",
                {":f": failure[:100], ":r": reason, ":now": now},
                integration_id,
            )
            return
        self._update_status(
            "SET missing_scopes = :m REMOVE last_connect_failure", {":m": list(missing_scopes or [])}, integration_id
        )

    def rotate_webhook_secret(
        self, integration_id: str, new_hash: str, previous_hash: str | None, previous_until: int | None
    ) -> None:
        """A new hook secret (only its hash), the replaced one working until ``previous_until``: one update of the
        settings, nothing else in them touched."""
        sets = "webhook_secret_hash = :n, previous_webhook_secret_hash = :p, previous_secret_until = :u"
        dynamodb_client().update_item(
            TableName=self.table_name,
            Key=self._written(settings_key(integration_id)),
            UpdateExpression=f"SET {sets}",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":n": new_hash, ":p": previous_hash or "", ":u": previous_until or 0}),
        )

    def adopt_application_token(self, integration_id: str, token_hash: str) -> bool:
        """Keep a Bitrix24 application token's hash when none is saved (the first authentic delivery's); False when
        one is saved already."""
        try:
            dynamodb_client().update_item(
                TableName=self.table_name,
                Key=self._written(settings_key(integration_id)),
                UpdateExpression="SET application_token_hash = :h",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(application_token_hash)",
                ExpressionAttributeValues={":h": {"S": token_hash}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record_hook_subscription(self, integration_id: str, state: str, detail: str | None = None) -> None:
        """The integration's own webhook subscription, for the checklist (``hook_subscription``: state, at, detail)."""
        record = {"state": state, "at": int(time.time()), "detail": (detail or "")[:300]}
        self._update_status("SET hook_subscription = :h", {":h": record}, integration_id)

    def record_settings_check(self, integration_id: str, check: Mapping[str, Any]) -> None:
        """What the CRM said of the saved settings (``settings_check``: state, checked_at, unknown keys, detail)."""
        self._update_status("SET settings_check = :c", {":c": dict(check)}, integration_id)

    def record_hook(self, integration_id: str, reason: str | None, ignored: Mapping[str, int]) -> None:
        """One delivery to the integration's hook URL, for the set-up checklist: a refusal counted by its reason
        (``refused_<reason>``, the hook's own closed set) with ``last_refusal``, or a delivery taken
        (``last_webhook_at``) with the events it ignored by name (``ignored_<EVENT>``, names the CRM sends,
        cut to 40 safe characters and at most 10 a delivery). Every attribute is a counter or a stamp: a stranger
        hammering a URL grows nothing. Stamps keep milliseconds: a refusal and a delivery in one second are ordered."""
        now = Decimal(str(round(time.time(), 3)))
        values: dict[str, Any] = {":now": now, ":one": 1}
        if reason is not None:
            key = SAFE_NAME.sub("", reason)[:40] or "other"
            values[":why"] = key
            self._update_status(
                f"ADD refused_{key} :one SET last_refusal = :why, last_refusal_at = :now", values, integration_id
            )
            return
        adds = []
        for index, (name, count) in enumerate(sorted(ignored.items())[:10]):
            key = SAFE_NAME.sub("", name.replace(".", "_").replace(":", "_"))[:40]
            if key and count > 0:
                adds.append(f"ignored_{key} :i{index}")
                values[f":i{index}"] = int(count)
        values.pop(":one")
        expression = "SET last_webhook_at = :now" + (f" ADD {', '.join(adds)}" if adds else "")
        self._update_status(expression, values, integration_id)

    def save_sweep_position(self, integration_id: str, position: Mapping[str, Any], report: Mapping[str, Any]) -> None:
        """An unfinished window: where the next sweep goes on, and what this one did (shown in the status)."""
        self._update_status(
            "SET sweep_position = :p, last_sweep = :r", {":p": dict(position), ":r": dict(report)}, integration_id
        )

    def finish_sweep(self, integration_id: str, watermark: int, finished_at: int, report: Mapping[str, Any]) -> None:
        """A window listed to its end: the next one starts at ``watermark`` (less the overlap)."""
        dynamodb_client().update_item(
            TableName=self.table_name,
            Key=self._written(status_key(integration_id)),
            UpdateExpression=(
                "SET sweep_watermark = :w, sweep_finished_at = :f, last_sweep = :r "
                "REMOVE sweep_position, failed_runs_sweep, gave_up_sweep_at"
            ),
            ExpressionAttributeValues=to_item({":w": watermark, ":f": finished_at, ":r": dict(report)}),
        )

    def record_job_failure(self, integration_id: str, kind: str, reason: str, at: int, gave_up: bool) -> None:
        """A scheduled job of this integration failed (it is retried, then dead-lettered): the status says why.
        ``gave_up``: its last attempt, counted in ``failed_runs_<kind>`` until a run of that kind succeeds."""
        values: dict[str, Any] = {":f": {"kind": kind, "reason": reason[:300], "at": at}}
        expression = "SET last_job_failure = :f"
        if gave_up and kind.isalpha():
            expression += f", gave_up_{kind}_at = :at ADD failed_runs_{kind} :one"
            values.update({":at": at, ":one": 1})
        self._update_status(expression, values, integration_id)

    def set_chat_channel(
        self,
        integration_id: str,
        state: str,
        *,
        scope_id: str | None = None,
        amojo_account_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """The site chat channel's state on this account (connecting, connected, disconnecting, disconnected,
        failed), and its scope once connected."""
        values: dict[str, Any] = {":s": state, ":now": int(time.time())}
        sets = ["chat_channel_state = :s", "chat_channel_changed_at = :now"]
        if scope_id is not None:
            sets.append("chat_scope_id = :scope")
            values[":scope"] = scope_id
        if amojo_account_id is not None:
            sets.append("chat_amojo_account_id = :amojo")
            values[":amojo"] = amojo_account_id
        sets.append("chat_channel_error = :err")
        values[":err"] = (error or "")[:300]
        self._update_status(f"SET {', '.join(sets)}", values, integration_id)

    def set_drift_mark(
        self, integration_id: str, at: int, emitted: int, reading: Mapping[str, int] | None = None
    ) -> None:
        """Where the next drift check starts; and what the last one found (shown in the status)."""
        values: dict[str, Any] = {":at": at, ":e": emitted}
        expression = "SET drift_mark_at = :at, drift_mark_emitted = :e"
        if reading is not None:
            expression += ", drift_last = :r"
            values[":r"] = dict(reading)
        self._update_status(expression, values, integration_id)

    def status(self, integration_id: str) -> dict[str, Any]:
        item = self._read(status_key(integration_id))
        return {k: v for k, v in from_item(item).items() if k not in {"pk", "sk"}} if item else {}

    def _update_status(self, expression: str, values: dict[str, Any], integration_id: str) -> None:
        dynamodb_client().update_item(
            TableName=self.table_name,
            Key=self._written(status_key(integration_id)),
            UpdateExpression=expression,
            ExpressionAttributeValues=to_item(values),
        )


_LAST: dict[Outcome, str] = {
    "accepted": "event",
    "emitted": "lead",
    "skipped": "skip",
    "failed": "failure",
    "parked": "parked",
}


class BatchStatus:
    """Status counters gathered over one worker batch and written once per integration (``flush``).

    Counting costs no write per event. A worker that dies before flushing loses those counts, not a lead:
    the counters are for people, the ledger is the record. Connection states are written at once.
    """

    def __init__(
        self, inner: DynamoIntegrations, stamp_every_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.inner = inner
        self._delivered: dict[str, float] = {}
        self._stamp_alone = OncePer(stamp_every_seconds, clock)  # a write that holds only the delivery's stamp
        self._counts: dict[str, dict[Outcome, int]] = {}
        self._errors: dict[str, str] = {}
        self._unknown: dict[str, set[str]] = {}
        self._notices: dict[str, set[str]] = {}

    def record_outcome(self, integration_id: str, outcome: Outcome, error: str | None = None) -> None:
        counts = self._counts.setdefault(integration_id, {})
        counts[outcome] = counts.get(outcome, 0) + 1
        if error is not None:
            self._errors[integration_id] = error

    def record_delivery(self, integration_id: str, delivered_at: float) -> None:
        """The hook took a delivery at ``delivered_at``: written with the batch's counters (no request of its own),
        or, for a batch that counted nothing for the integration (chat messages only), at most once a minute."""
        self._delivered[integration_id] = max(delivered_at, self._delivered.get(integration_id, 0.0))

    def record_unknown_channel(self, integration_id: str, origin: str) -> None:
        self._unknown.setdefault(integration_id, set()).add(origin)

    def record_notice(self, integration_id: str, notice: str) -> None:
        """Something an admin should know about the account (e.g. ``filtered_reads_refused``)."""
        self._notices.setdefault(integration_id, set()).add(notice)

    def set_connection_state(self, integration_id: str, state: ConnectionState, reason: str | None = None) -> None:
        self.inner.set_connection_state(integration_id, state, reason)

    def flush(self) -> None:
        counts, errors, unknown, notices = self._counts, self._errors, self._unknown, self._notices
        delivered, self._delivered = self._delivered, {}
        self._counts, self._errors, self._unknown, self._notices = {}, {}, {}, {}
        for integration_id in sorted(set(counts) | set(delivered)):
            outcome_counts = {k: v for k, v in counts.get(integration_id, {}).items() if v}
            if not outcome_counts and (integration_id not in delivered or not self._stamp_alone.due(integration_id)):
                continue
            try:
                self.inner.record_outcomes(
                    integration_id,
                    outcome_counts,
                    errors.get(integration_id),
                    unknown.get(integration_id),
                    notices.get(integration_id),
                    delivered.get(integration_id),
                )
            except (BotoCoreError, ClientError):  # counters are for people: a throttled write never fails a batch
                continue


class CachedIntegrations:
    """A short in-process cache in front of the table, for the webhook path.

    A webhook must be answered within amoCRM's 2 s with one SQS write; one DynamoDB read per request is affordable,
    but a warm container answering a burst needs none. A change of settings (or a deactivation) reaches the hooks
    within ``ttl_seconds``.
    """

    def __init__(self, inner: DynamoIntegrations, ttl_seconds: int) -> None:
        self.inner = inner
        self.ttl_seconds = ttl_seconds
        self._entries: dict[str, tuple[float, Integration | None]] = {}

    def get(self, integration_id: str) -> Integration | None:
        now = time.monotonic()
        cached = self._entries.get(integration_id)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            return cached[1]
        return self.fresh(integration_id)

    def fresh(self, integration_id: str) -> Integration | None:
        """Read through: before a hook refuses a secret, it checks the table, never a cache older than a rotation."""
        now = time.monotonic()
        integration = self.inner.get(integration_id)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[integration_id] = (now, integration)
        return integration


def integration_to_record(integration: Integration) -> dict[str, Any]:
    record = asdict(integration)
    record["messenger_targets"] = {k: asdict(v) for k, v in integration.messenger_targets.items()}
    return record


def integration_from_record(record: dict[str, Any]) -> Integration:
    session = record.get("session_field")
    return Integration(
        integration_id=record["integration_id"],
        crm=record["crm"],
        crm_domain=record["crm_domain"],
        active=bool(record.get("active", True)),
        name=record.get("name", ""),
        client_id=record.get("client_id"),
        client_secret=record.get("client_secret"),
        webhook_secret_hash=record.get("webhook_secret_hash"),
        previous_webhook_secret_hash=record.get("previous_webhook_secret_hash"),
        previous_secret_until=record.get("previous_secret_until"),
        application_token_hash=record.get("application_token_hash"),
        account_id=record.get("account_id"),
        session_field=SessionField(**session) if session else None,
        traffic_type=record.get("traffic_type", "campaign"),
        default_target=TrafficTarget(**record.get("default_target", {})),
        messenger_targets={k: TrafficTarget(**v) for k, v in record.get("messenger_targets", {}).items()},
        employee_id=record.get("employee_id"),
        amo_note_enabled=bool(record.get("amo_note_enabled", True)),
        amo_trigger_leads="any_lead" if record.get("amo_trigger_leads") == "any_lead" else "chats_only",
        bitrix_enterprise=bool(record.get("bitrix_enterprise", False)),
        default_phone_region=record.get("default_phone_region", "RU"),
        session_getter=record.get("session_getter", "Comagic.getSessionId"),
    )

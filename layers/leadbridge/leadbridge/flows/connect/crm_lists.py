"""The pickers: lists read from the customer's CRM with the integration's grant, and the check of saved settings.

A list is read under the integration's shared CRM budget (the same one the worker paces its calls by) and cached
per integration for ``cache_seconds``: opening the settings page costs the CRM a few requests at most, whatever the
cabinet does. The hooks never wait for any of it (they call no CRM).

The settings check compares what was saved with what the CRM has: the amoCRM session field must exist and hold
text, and every ``messenger_targets`` key should be a channel the account can produce. A missing field is the
loss of every lead's session, so the API refuses it on save (``SettingsRefused``) and the daily check finds the
field deleted later (``session_field_missing``). A key no channel produces is kept and named in the status. When
the CRM cannot be asked, the result is ``pending``: the next scheduled check runs it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from aws_lambda_powertools import Logger

from leadbridge.aws.store.crm_lists import DynamoCrmLists
from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.amocrm.lists import AmoLists
from leadbridge.crms.bitrix24.client import BitrixClient
from leadbridge.crms.bitrix24.lists import BitrixLists
from leadbridge.crms.crm_lists import CrmChannel, CrmField, CrmLists, ListKind
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.http.errors import CrmError, GrantRevoked, NotConnected
from leadbridge.http.ratelimit import Budgets

logger = Logger(child=True)

CHECK_EVERY_SECONDS = 86_400
MAX_CACHED_BYTES = 300_000  # a list larger than this is read each time rather than pass DynamoDB's 400 KB item
CheckState = Literal["ok", "pending", "session_field_missing", "session_field_unusable"]
SESSION_FIELD_PROBLEMS: frozenset[str] = frozenset({"session_field_missing", "session_field_unusable"})


class NotReadable(Exception):
    """The integration cannot read its CRM now, for a reason a person must fix (409): never connected, a grant
    that needs re-authorization, deactivated."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SettingsRefused(ValueError):
    """The settings name a session field the CRM does not have, or one that cannot hold text (422)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SettingsCheck(NamedTuple):
    state: CheckState
    checked_at: int
    unknown_mapping_keys: list[str]
    detail: str

    def record(self) -> dict[str, Any]:
        return self._asdict()

    def refuse_session_field(self) -> None:
        """Raise ``SettingsRefused`` when the check found the session field missing or unable to hold text."""
        if self.state in SESSION_FIELD_PROBLEMS:
            raise SettingsRefused(self.state, self.detail)


def lists_for(integration: Integration, tokens: TokenProvider, budgets: Budgets) -> CrmLists:
    limiter = budgets.for_integration(integration)
    if integration.crm == "amocrm":
        return AmoLists(AmoClient(integration, tokens, limiter))
    return BitrixLists(BitrixClient(integration, tokens, limiter))


class CrmPickers:
    def __init__(
        self,
        tokens: TokenProvider,
        budgets: Budgets,
        cache: DynamoCrmLists,
        cache_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = tokens
        self.budgets = budgets
        self.cache = cache
        self.cache_seconds = cache_seconds
        self.clock = clock

    def read(self, integration: Integration, kind: ListKind, fresh: bool = False) -> list[dict[str, Any]]:
        """The list as JSON rows; ``NotReadable`` (409) when only a person can make it readable, ``CrmError`` when
        the CRM failed or refused."""
        if not integration.active:
            raise NotReadable("inactive", "the integration is deactivated: activate it to read its CRM")
        if not fresh:
            cached = self.cache.read(integration.integration_id, kind, self.cache_seconds, self.clock())
            if isinstance(cached, list):
                return cached
        crm = lists_for(integration, self.tokens, self.budgets)
        try:
            rows = [_row(item) for item in getattr(crm, kind)()]
        except NotConnected as exc:
            raise NotReadable("not_connected", "the integration is not connected: connect it through OAuth") from exc
        except GrantRevoked as exc:
            raise NotReadable("reauth_required", "the CRM grant needs re-authorization (authorize-url)") from exc
        if len(json.dumps(rows, ensure_ascii=False).encode()) <= MAX_CACHED_BYTES:
            self.cache.write(integration.integration_id, kind, rows, self.clock())
        return rows

    def check(self, integration: Integration, fresh: bool = False) -> SettingsCheck:
        """What the CRM says of the saved settings now; ``pending`` when it cannot be asked. A cached list that
        lacks the session field is read again first: the field may have been created a minute ago."""
        now = int(self.clock())
        try:
            state: CheckState = "ok"
            detail = ""
            wanted = integration.session_field
            if integration.crm == "amocrm" and wanted is not None:
                found = _field(self.read(integration, "fields", fresh), wanted.field_id, wanted.entity)
                if found is None and not fresh:
                    found = _field(self.read(integration, "fields", fresh=True), wanted.field_id, wanted.entity)
                problem = _session_field_problem(integration, found)
                if problem is not None:
                    state, detail = problem
            unknown: list[str] = []
            if integration.messenger_targets:
                keys = {row.get("key") for row in self.read(integration, "channels", fresh)}
                unknown = sorted(key for key in integration.messenger_targets if key not in keys)
        except NotReadable as exc:
            return SettingsCheck("pending", now, [], f"{exc.reason}: checked once the CRM can be read")
        except CrmError as exc:
            logger.info("settings check could not read the CRM", extra={"error": type(exc).__name__})
            return SettingsCheck("pending", now, [], f"the CRM could not be read ({type(exc).__name__})")
        return SettingsCheck(state, now, unknown, detail)


def _row(item: CrmField | CrmChannel | Any) -> dict[str, Any]:
    row: dict[str, Any] = item._asdict()
    if "stages" in row:
        row["stages"] = [stage._asdict() for stage in row["stages"]]
    return row


def _field(rows: list[dict[str, Any]], field_id: int, entity: str) -> dict[str, Any] | None:
    return next((row for row in rows if row.get("id") == str(field_id) and row.get("entity") == entity), None)


def _session_field_problem(integration: Integration, found: dict[str, Any] | None) -> tuple[CheckState, str] | None:
    wanted = integration.session_field
    assert wanted is not None
    if found is None:
        return (
            "session_field_missing",
            f"session_field {wanted.field_id}: amoCRM has no {wanted.entity} field with this id "
            "(GET /integrations/{id}/crm/fields lists those that can hold the session)",
        )
    if not found.get("holds_session"):
        return (
            "session_field_unusable",
            f"session_field {wanted.field_id} ({found.get('type')}) cannot hold text: choose a text field",
        )
    return None

"""amoCRM's "integration disabled" hook (reference/amocrm.md §1.9).

``GET <url>?account_id=..&client_uuid=..&signature=..`` with
``signature = hex(HMAC-SHA256(client_secret, "{client_id}|{account_id}"))``. The signature is the same for every
hook of that client and account, for ever: a captured one could be replayed after a new authorization. So a valid
hook is bound to the grant it disables: it takes effect only when amoCRM itself no longer honours the integration's
current access token (one ``GET /api/v4/account``). Then the integration is marked disconnected and its tokens
dropped; against a live grant it changes nothing (409).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.tokens import DynamoTokens
from leadbridge.crms.amocrm.oauth import grant_is_alive
from leadbridge.http.ratelimit import Budgets


@dataclass(frozen=True, slots=True)
class DisabledHookResult:
    status: int
    reason: str


def expected_signature(client_id: str, account_id: str, client_secret: str) -> str:
    return hmac.new(client_secret.encode(), f"{client_id}|{account_id}".encode(), hashlib.sha256).hexdigest()


def handle_disabled_hook(
    integrations: DynamoIntegrations,
    tokens: DynamoTokens,
    budgets: Budgets,
    integration_id: str,
    params: dict[str, str],
) -> DisabledHookResult:
    integration = integrations.get(integration_id) if 0 < len(integration_id) <= 64 else None
    if integration is None or integration.crm != "amocrm" or not integration.client_id or not integration.client_secret:
        return DisabledHookResult(404, "unknown_integration")
    account_id = params.get("account_id", "")
    client_uuid = params.get("client_uuid", "")
    signature = params.get("signature", "").lower()
    expected = expected_signature(integration.client_id, account_id, integration.client_secret)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return DisabledHookResult(403, "bad_signature")
    if not hmac.compare_digest(client_uuid.encode(), integration.client_id.encode()):
        return DisabledHookResult(403, "client_mismatch")
    if integration.account_id and integration.account_id != account_id:
        return DisabledHookResult(403, "account_mismatch")
    stored = tokens.read(integration_id)
    if stored is None or stored.state != "active":
        return DisabledHookResult(200, "already_disconnected")
    alive = grant_is_alive(integration.crm_domain, stored.tokens.access_token, budgets.for_integration(integration))
    if alive is None:
        return DisabledHookResult(502, "crm_unavailable")
    if alive:
        return DisabledHookResult(409, "grant_alive")
    tokens.set_state(integration_id, "disconnected", "integration disabled in amoCRM")
    integrations.set_connection_state(integration_id, "disconnected", "integration disabled in amoCRM")
    return DisabledHookResult(200, "disconnected")

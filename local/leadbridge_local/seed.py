"""Local integrations: settings in the table, a webhook secret, and tokens issued by the fake CRM."""

from __future__ import annotations

import time
from dataclasses import replace

from leadbridge.integration import Integration
from leadbridge.store.integrations import DynamoIntegrations
from leadbridge.store.tokens import DynamoTokens, TokenSet
from leadbridge.webhook_secret import hash_secret, new_secret
from leadbridge_local.runner import LocalRunner


def install_integration(runner: LocalRunner, integration: Integration, secret: str | None = None) -> str:
    """Save the integration with a webhook secret; returns the secret (shown once, as the API would)."""
    secret = secret or new_secret()
    table = runner.stack.ref("IntegrationsTable")
    DynamoIntegrations(table).put(replace(integration, webhook_secret_hash=hash_secret(secret)))
    return secret


def connect_amocrm(runner: LocalRunner, integration: Integration, account_id: int) -> None:
    """What the OAuth callback does on connect, with tokens from the fake amoCRM."""
    subdomain = integration.account_name
    runner.amocrm.add_account(subdomain, account_id)
    runner.amocrm.register_client(
        integration.client_id or "", integration.client_secret or "", runner.base_url + "/oauth2/callback"
    )
    pair = runner.amocrm.issue_tokens(subdomain, integration.client_id or "")
    expires_at = int(time.time()) + int(pair["expires_in"])
    tokens = TokenSet(pair["access_token"], pair["refresh_token"], expires_at, refresh_due_at=expires_at - 3 * 3600)
    table = runner.stack.ref("IntegrationsTable")
    DynamoTokens(table).save_new(integration.integration_id, "amocrm", tokens)
    DynamoIntegrations(table).record_account(integration.integration_id, str(account_id), integration.crm_domain)
    DynamoIntegrations(table).set_connection_state(integration.integration_id, "connected")

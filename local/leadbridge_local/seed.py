"""Local integrations: settings in the table, a webhook secret, and tokens issued by the fake CRM."""

from __future__ import annotations

import time
from dataclasses import replace

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.tokens import DynamoTokens, TokenSet
from leadbridge.contract.integration import Integration
from leadbridge.contract.webhook_secret import hash_secret, new_secret
from leadbridge.crms.bitrix24.oauth import bitrix_token_set
from leadbridge_local.fakes.base import remember_secret
from leadbridge_local.runner import LocalRunner


def install_integration(
    runner: LocalRunner, integration: Integration, secret: str | None = None, application_token: str | None = None
) -> str:
    """Save the integration with a webhook secret (and Bitrix24's application token); returns the secret."""
    secret = remember_secret(secret or new_secret())
    if application_token:
        remember_secret(application_token)
    table = runner.stack.ref("IntegrationsTable")
    token_hash = hash_secret(application_token) if application_token else integration.application_token_hash
    DynamoIntegrations(table).put(
        replace(integration, webhook_secret_hash=hash_secret(secret), application_token_hash=token_hash)
    )
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


def connect_bitrix24(runner: LocalRunner, integration: Integration, member_id: str) -> None:
    """What the OAuth callback does on connect, with tokens from the fake Bitrix24 portal."""
    runner.bitrix24.add_portal(integration.crm_domain, member_id)
    runner.bitrix24.register_client(integration.client_id or "", integration.client_secret or "")
    pair = runner.bitrix24.issue_tokens(integration.crm_domain, integration.client_id or "")
    tokens = bitrix_token_set(pair)
    table = runner.stack.ref("IntegrationsTable")
    DynamoTokens(table).save_new(integration.integration_id, "bitrix24", tokens)
    DynamoIntegrations(table).record_account(integration.integration_id, member_id, integration.crm_domain)
    DynamoIntegrations(table).set_connection_state(integration.integration_id, "connected")


def connect_through_oauth(runner: LocalRunner, integration: Integration, account_id: str) -> int:
    """Connect the way an admin does: authorize URL (signed state) -> the fake CRM's redirect -> /oauth2/callback.

    Returns the callback's HTTP status.
    """
    return runner.get(consent_redirect(runner, integration, account_id).removeprefix(runner.base_url)).status_code


def consent_redirect(runner: LocalRunner, integration: Integration, account_id: str) -> str:
    """Where the fake CRM's consent page sends the admin's browser once they allow access: the stack's
    ``/oauth2/callback`` with a fresh code and the integration's signed state. The fake CRM gets the account (or
    portal) and the integration's OAuth client first, as the CRM has them."""
    from urllib.parse import parse_qs, urlencode, urlsplit  # noqa: PLC0415

    from leadbridge.aws.secret_values import secret_string  # noqa: PLC0415
    from leadbridge.flows.connect.authorize import authorize_url  # noqa: PLC0415
    from leadbridge.flows.connect.state import StateSigner  # noqa: PLC0415

    signer = StateSigner(lambda: secret_string(runner.stack.ref("StateSigningSecret")))
    state = parse_qs(urlsplit(authorize_url(integration, signer)).query)["state"][0]
    client_id, client_secret = integration.client_id or "", integration.client_secret or ""
    if integration.crm == "amocrm":
        runner.amocrm.add_account(integration.account_name, int(account_id))
        runner.amocrm.register_client(client_id, client_secret, runner.base_url + "/oauth2/callback")
        code = runner.amocrm.issue_code(integration.account_name, client_id)
        params = {
            "code": code,
            "state": state,
            "referer": integration.crm_domain,
            "platform": "1",
            "client_id": client_id,
        }
    else:
        runner.bitrix24.add_portal(integration.crm_domain, account_id)
        runner.bitrix24.register_client(client_id, client_secret)
        code = runner.bitrix24.issue_code(integration.crm_domain, client_id)
        params = {
            "code": code,
            "state": state,
            "domain": integration.crm_domain,
            "member_id": account_id,
            "scope": "crm,imopenlines,im",
            "server_domain": "oauth.bitrix.info",
        }
    return f"{runner.base_url}/oauth2/callback?{urlencode(params)}"

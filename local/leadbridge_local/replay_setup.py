"""Integrations that match captured webhooks, connected to the fake CRMs."""

from __future__ import annotations

import re

from leadbridge.contract.integration import Integration
from leadbridge_local.runner import LocalRunner
from leadbridge_local.seed import connect_amocrm, connect_bitrix24, install_integration


def connect_replay_account(
    runner: LocalRunner, crm: str, domain: str, account_id: str | None, application_token: str | None
) -> str:
    """Set up and connect an integration for this account; returns its webhook secret."""
    integration_id = "replay-" + re.sub(r"[^a-z0-9-]", "-", domain.lower())[:50]
    integration = Integration(
        integration_id=integration_id,
        crm=crm,  # type: ignore[arg-type]
        crm_domain=domain,
        name=f"replay {domain}",
        client_id=f"replay-client-{integration_id}",
        client_secret="replay-client-secret",  # noqa: S106 - accepted only by the local fake
    )
    secret = install_integration(runner, integration, application_token=application_token)
    if crm == "amocrm":
        numeric = int(account_id) if account_id and account_id.isdigit() else 1
        connect_amocrm(runner, integration, numeric)
    else:
        connect_bitrix24(runner, integration, member_id=account_id or "replay-member")
    return secret

"""The URL an admin opens to connect an integration, with a fresh signed state."""

from __future__ import annotations

from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.oauth import authorize_url as amocrm_authorize_url
from leadbridge.crms.bitrix24.oauth import authorize_url as bitrix24_authorize_url
from leadbridge.flows.connect.state import StateSigner


def authorize_url(integration: Integration, signer: StateSigner) -> str:
    state = signer.sign(integration.integration_id)
    if integration.crm == "amocrm":
        return amocrm_authorize_url(integration, state)
    return bitrix24_authorize_url(integration, state)

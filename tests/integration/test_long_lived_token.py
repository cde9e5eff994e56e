"""amoCRM long-lived tokens (no refresh token): used while valid; when expired, only a person can help."""

from __future__ import annotations

import time

import pytest

from leadbridge.aws.store.tokens import DynamoTokens, TokenSet
from leadbridge.composition import refreshers
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.http.errors import GrantRevoked
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import new_amo_integration


def test_long_lived_token(runner: LocalRunner) -> None:
    integration, _, _ = new_amo_integration(runner)
    tokens = DynamoTokens(runner.stack.ref("IntegrationsTable"))
    provider = TokenProvider(tokens, refreshers(runner.base_url + "/oauth2/callback"))
    refreshes = runner.amocrm.counts["refresh_requests"]

    tokens.save_new(
        integration.integration_id, "amocrm", TokenSet("long-lived-1", None, int(time.time()) + 5 * 365 * 86400, None)
    )
    assert provider.get(integration).value == "long-lived-1"
    assert integration.integration_id not in tokens.due(before=int(time.time()) + 10 * 365 * 86400)

    tokens.save_new(integration.integration_id, "amocrm", TokenSet("long-lived-2", None, int(time.time()) - 1, None))
    with pytest.raises(GrantRevoked):
        provider.get(integration)
    stored = tokens.read(integration.integration_id)
    assert stored is not None
    assert stored.state == "reauth_required"
    assert runner.amocrm.counts["refresh_requests"] == refreshes

"""The scheduled refresher over tokens of both CRMs in every state: fresh, due, dead, leased."""

from __future__ import annotations

import time

from leadbridge.store.tokens import DynamoTokens, TokenSet
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import new_amo_integration, new_bitrix_integration


def make_due(tokens: DynamoTokens, integration_id: str, crm: str) -> TokenSet:
    stored = tokens.read(integration_id)
    assert stored is not None
    due = TokenSet(
        stored.tokens.access_token,
        stored.tokens.refresh_token,
        int(time.time()) + 600,
        int(time.time()) - 60,
        stored.tokens.extra,
    )
    tokens.save_new(integration_id, crm, due)
    return due


def test_refresher_run(runner: LocalRunner) -> None:
    tokens = DynamoTokens(runner.stack.ref("IntegrationsTable"))
    fresh_amo = new_amo_integration(runner)[0]
    due_amo = new_amo_integration(runner)[0]
    due_b24 = new_bitrix_integration(runner)[0]
    dead_amo = new_amo_integration(runner)[0]
    leased_b24 = new_bitrix_integration(runner)[0]
    for integration in (due_amo, due_b24, dead_amo, leased_b24):
        make_due(tokens, integration.integration_id, integration.crm)
    dead = tokens.read(dead_amo.integration_id)
    assert dead is not None
    assert dead.tokens.refresh_token is not None
    grant = runner.amocrm.refresh_tokens[dead.tokens.refresh_token][0]
    runner.amocrm.refresh_tokens[dead.tokens.refresh_token] = (grant, True)  # already used: amoCRM refuses it
    leased = tokens.read(leased_b24.integration_id)
    assert leased is not None
    assert tokens.try_lease(leased_b24.integration_id, leased.version, "someone-else", int(time.time()), 600)

    report = runner.run_scheduled("TokenRefresherFunction")

    assert report["refreshed"] >= 2
    assert report["dead"] >= 1
    after = {
        i.integration_id: tokens.read(i.integration_id) for i in (fresh_amo, due_amo, due_b24, dead_amo, leased_b24)
    }
    assert after[fresh_amo.integration_id].version == 1  # type: ignore[union-attr]
    assert after[due_amo.integration_id].version == 3  # type: ignore[union-attr]  # save_new made it 2, the refresh 3
    assert after[due_b24.integration_id].version == 3  # type: ignore[union-attr]
    assert after[dead_amo.integration_id].state == "reauth_required"  # type: ignore[union-attr]
    assert after[leased_b24.integration_id].version == 2  # type: ignore[union-attr]  # another process holds the lease
    due_now = tokens.due(before=int(time.time()))
    assert dead_amo.integration_id not in due_now
    assert due_amo.integration_id not in due_now

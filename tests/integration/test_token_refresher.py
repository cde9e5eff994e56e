"""Token upkeep over tokens of both CRMs in every state: fresh, due, dead, leased; and behind hundreds of paused
integrations."""

from __future__ import annotations

import time

from leadbridge.aws.store.tokens import DynamoTokens, TokenSet
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import new_amo_integration, new_bitrix_integration


def make_due(tokens: DynamoTokens, integration_id: str, crm: str, overdue: int = 60) -> TokenSet:
    stored = tokens.read(integration_id)
    assert stored is not None
    due = TokenSet(
        stored.tokens.access_token,
        stored.tokens.refresh_token,
        int(time.time()) + 600,
        int(time.time()) - overdue,
        stored.tokens.extra,
    )
    tokens.save_new(integration_id, crm, due)
    return due


def test_token_upkeep_run(runner: LocalRunner) -> None:
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

    runner.run_schedule("tokens")

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
    # Refreshed grants are due again only near the end of their refresh token's life, not the access token's.
    refreshed = after[due_amo.integration_id]
    assert refreshed is not None
    assert refreshed.tokens.refresh_due_at is not None
    assert refreshed.tokens.refresh_due_at > time.time() + 60 * 86_400


def test_hundreds_of_paused_integrations_never_stop_an_active_ones_refresh(runner: LocalRunner) -> None:
    """Paused integrations keep their tokens; the old refresher took the 500 oldest due ids and skipped paused ones
    without moving their due date, so 600 of them hid every other token for ever."""
    table = runner.stack.ref("IntegrationsTable")
    tokens = DynamoTokens(table)
    paused = []
    for _ in range(600):
        integration = new_amo_integration(runner, active=False)[0]
        make_due(tokens, integration.integration_id, "amocrm", overdue=86_400)  # older than the active one's
        paused.append(integration)
    active = new_amo_integration(runner)[0]
    make_due(tokens, active.integration_id, "amocrm", overdue=60)

    runner.run_schedule("tokens", timeout=300)

    refreshed = tokens.read(active.integration_id)
    assert refreshed is not None
    assert refreshed.version == 3
    due_now = set(tokens.due(before=int(time.time()), limit=10_000))
    assert active.integration_id not in due_now
    # A paused integration's grant is kept alive too: resuming it needs no person.
    assert not due_now & {i.integration_id for i in paused}

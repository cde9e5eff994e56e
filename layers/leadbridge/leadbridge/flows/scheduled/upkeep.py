"""Token upkeep: refresh ahead of time only the grants that would otherwise die.

An integration in use refreshes on demand (``TokenProvider.get``), which moves its ``refresh_due_at`` forward each
time. So a token only becomes due when nothing has used it for most of its refresh token's life (amoCRM: 3 months,
Bitrix24: 180 days): an idle or paused integration. Those are refreshed one per scheduled job. A paused integration
keeps its tokens, so its grant is kept alive too: resuming it must not need a person.
"""

from __future__ import annotations

from typing import Literal, Protocol

from aws_lambda_powertools import Logger

from leadbridge.aws.store.tokens import DynamoTokens
from leadbridge.contract.integration import Integration
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.http.errors import GrantRevoked, NotConnected

logger = Logger(child=True)

UpkeepOutcome = Literal["refreshed", "not_due", "busy", "dead"]


class Integrations(Protocol):
    def get(self, integration_id: str) -> Integration | None: ...


def keep_alive(
    tokens: DynamoTokens,
    integrations: Integrations,
    provider: TokenProvider,
    integration_id: str,
    due_before: int,
    now: int,
) -> UpkeepOutcome:
    """Refresh one integration's grant if it is still due at ``due_before``. CRM errors other than a dead grant
    propagate: the job fails and is retried."""
    stored = tokens.read(integration_id)
    if stored is None or stored.state != "active" or stored.tokens.refresh_due_at is None:
        return "not_due"
    if stored.tokens.refresh_due_at > due_before:  # used (and so refreshed) since it was planned
        return "not_due"
    if stored.lease_until is not None and stored.lease_until > now:
        return "busy"  # another process is refreshing it right now: it is in use, not dying
    integration = integrations.get(integration_id)
    if integration is None:
        return "not_due"
    try:
        provider.refresh_now(integration)
    except (GrantRevoked, NotConnected):
        return "dead"
    logger.info("idle grant kept alive", extra={"integration_id": integration_id, "crm": integration.crm})
    return "refreshed"

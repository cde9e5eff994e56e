"""One run of the scheduled token refresher.

Finds tokens that are due through the ``tokens-by-refresh-due`` index (never a Scan) and refreshes them with
bounded concurrency, each under the same lease as the workers use. A dead grant moves its integration to
``reauth_required`` (and leaves the index); a transient failure is simply retried on the next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from aws_lambda_powertools import Logger

from leadbridge.http.errors import CrmError, GrantRevoked, NotConnected
from leadbridge.oauth.token_provider import TokenProvider
from leadbridge.store.integrations import DynamoIntegrations
from leadbridge.store.tokens import DynamoTokens

logger = Logger(child=True)
LOOKAHEAD_SECONDS = 15 * 60  # a little more than the schedule's interval

RefreshOutcome = Literal["refreshed", "skipped", "failed", "dead"]


@dataclass(frozen=True, slots=True)
class RefreshReport:
    due: int
    refreshed: int
    skipped: int
    failed: int
    dead: int


def refresh_due_tokens(
    tokens: DynamoTokens,
    integrations: DynamoIntegrations,
    provider: TokenProvider,
    concurrency: int,
    clock: Callable[[], float] = time.time,
) -> RefreshReport:
    due = tokens.due(before=int(clock()) + LOOKAHEAD_SECONDS)

    def refresh(integration_id: str) -> RefreshOutcome:
        integration = integrations.get(integration_id)
        if integration is None or not integration.active:
            return "skipped"
        try:
            provider.refresh_now(integration)
        except (GrantRevoked, NotConnected):
            return "dead"
        except CrmError as exc:
            logger.warning(
                "refresh failed; retried next run",
                extra={"integration_id": integration_id, "error": type(exc).__name__},
            )
            return "failed"
        return "refreshed"

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        outcomes = list(pool.map(refresh, due))
    return RefreshReport(
        due=len(due),
        refreshed=outcomes.count("refreshed"),
        skipped=outcomes.count("skipped"),
        failed=outcomes.count("failed"),
        dead=outcomes.count("dead"),
    )

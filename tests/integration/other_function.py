"""Another function calling the same amoCRM account (as the sweep or the OAuth callback would, in AWS): its own
process, its own ``Budgets``, the same budget item in DynamoDB."""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection

from leadbridge.aws.store.limits import DynamoLimitState
from leadbridge.aws.store.tokens import DynamoTokens
from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.http.ratelimit import Budgets


def call_the_account(integration: Integration, env: dict[str, str], seconds: float, out: Connection) -> None:
    os.environ.update(env)
    budgets = Budgets(DynamoLimitState(env["LIMITS_TABLE"]))
    tokens = TokenProvider(DynamoTokens(env["INTEGRATIONS_TABLE"]), {})
    client = AmoClient(integration, tokens, budgets.for_integration(integration))
    calls = 0
    deadline = time.time() + seconds
    while time.time() < deadline:
        client.get_account()
        calls += 1
    out.send(calls)
    out.close()

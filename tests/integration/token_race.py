"""Worker processes for the token race: each asks for a token many times at once, from several threads."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection

from leadbridge.composition import refreshers
from leadbridge.integration import Integration
from leadbridge.oauth.token_provider import TokenProvider
from leadbridge.store.tokens import DynamoTokens


def ask_for_tokens(
    integration: Integration, env: dict[str, str], start_at: float, threads: int, out: Connection
) -> None:
    os.environ.update(env)
    provider = TokenProvider(DynamoTokens(env["INTEGRATIONS_TABLE"]), refreshers(env["OAUTH_REDIRECT_URI"]))
    time.sleep(max(0.0, start_at - time.time()))
    with ThreadPoolExecutor(threads) as pool:
        values = list(pool.map(lambda _: provider.get(integration).value, range(threads)))
    out.send(values)
    out.close()

"""Worker processes for the token race: each asks for a token many times at once, from several threads."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from threading import Barrier

from leadbridge.aws.store.tokens import DynamoTokens
from leadbridge.composition import refreshers
from leadbridge.contract.integration import Integration
from leadbridge.crms.token_provider import TokenProvider


def ask_for_tokens(
    integration: Integration, env: dict[str, str], start: Barrier, threads: int, out: Connection
) -> None:
    os.environ.update(env)
    provider = TokenProvider(DynamoTokens(env["INTEGRATIONS_TABLE"]), refreshers(env["OAUTH_REDIRECT_URI"]))
    start.wait(timeout=300)  # every process imported and ready, however slow the machine: then all at once
    with ThreadPoolExecutor(threads) as pool:
        values = list(pool.map(lambda _: provider.get(integration).value, range(threads)))
    out.send(values)
    out.close()

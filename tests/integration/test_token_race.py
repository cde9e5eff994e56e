"""Many threads and processes want a token while it is expired: exactly one refresh reaches the CRM."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from leadbridge.aws.store.tokens import DynamoTokens, TokenSet
from leadbridge.composition import refreshers
from leadbridge.contract.integration import Integration
from leadbridge.crms.token_provider import TokenProvider
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import new_amo_integration, new_bitrix_integration
from tests.integration.token_race import ask_for_tokens


def concurrent_gets(provider: TokenProvider, integration: Integration, threads: int) -> list[str]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda _: provider.get(integration).value, range(threads)))


def test_concurrent_refresh_of_an_expired_token_happens_once(runner: LocalRunner) -> None:
    for integration, fake in (
        (new_amo_integration(runner)[0], runner.amocrm),
        (new_bitrix_integration(runner)[0], runner.bitrix24),
    ):
        table = runner.stack.ref("IntegrationsTable")
        tokens = DynamoTokens(table)
        stored = tokens.read(integration.integration_id)
        assert stored is not None
        expired = TokenSet(
            stored.tokens.access_token,
            stored.tokens.refresh_token,
            int(time.time()) - 5,
            stored.tokens.refresh_due_at,
            stored.tokens.extra,
        )
        tokens.save_new(integration.integration_id, integration.crm, expired)
        before = fake.counts["refresh_requests"]
        rejected_before = fake.counts["refresh_rejected"]

        context = multiprocessing.get_context("spawn")
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("AWS_", "LEADBRIDGE_", "INTEGRATIONS_TABLE", "OAUTH_", "POWERTOOLS_"))
        }
        start = context.Barrier(4)  # three processes and this one
        pipes, processes = [], []
        for _ in range(3):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=ask_for_tokens, args=(integration, env, start, 6, sender))
            process.start()
            pipes.append(receiver)
            processes.append(process)
        provider = TokenProvider(tokens, refreshers(os.environ["OAUTH_REDIRECT_URI"]))
        start.wait(timeout=300)
        values = concurrent_gets(provider, integration, 8)
        for pipe, process in zip(pipes, processes, strict=True):
            values += pipe.recv()
            process.join(30)
            assert process.exitcode == 0

        assert fake.counts["refresh_requests"] - before == 1
        assert fake.counts["refresh_rejected"] == rejected_before
        assert len(values) == 26
        assert len(set(values)) == 1
        new_token = values[0]
        if integration.crm == "amocrm":
            answer = httpx.get(
                f"{runner.crm_server.origin}/api/v4/account",
                headers={"Authorization": f"Bearer {new_token}", "X-Original-Host": integration.crm_domain},
            )
        else:
            answer = httpx.post(
                f"{runner.crm_server.origin}/rest/crm.lead.get",
                json={"id": 1, "auth": new_token},
                headers={"X-Original-Host": integration.crm_domain},
            )
            assert answer.json().get("error") != "expired_token"
            continue
        assert answer.status_code == 200

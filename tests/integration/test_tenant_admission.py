"""One integration's webhook storm, over the local AWS: it is answered 429 beyond its share (the budget in the limits
table, shared by every execution environment) while a quiet integration's deliveries are taken as usual."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from leadbridge.aws.queues import InboxQueue
from leadbridge.aws.store.hook_admission import DynamoHookBudgets
from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.flows.hooks.admission import TenantAdmission
from leadbridge.flows.hooks.handler import SparseOutcomes, handle_hook
from leadbridge.flows.hooks.intake import accept_amocrm
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import new_amo_integration, sample_body, talk_fields


class Clock:
    now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def event(integration_id: str, secret: str, body: bytes) -> dict[str, Any]:
    return {
        "routeKey": "POST /hooks/amocrm/{integration_id}/{secret}/",
        "pathParameters": {"integration_id": integration_id, "secret": secret},
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def test_a_storming_integration_gets_429_while_a_quiet_one_gets_200(runner: LocalRunner) -> None:
    storm, storm_secret, storm_account = new_amo_integration(runner)
    quiet, quiet_secret, quiet_account = new_amo_integration(runner)
    integrations = DynamoIntegrations(runner.stack.ref("IntegrationsTable"))
    inbox = InboxQueue(runner.stack.ref("InboxQueue"))
    clock = Clock()
    budgets = DynamoHookBudgets(runner.stack.ref("LimitsTable"))
    # Two execution environments, one budget: 3 deliveries a second for 10 seconds, 5 quiet ones each, chunks of 10.
    environments = [TenantAdmission(budgets, rate=3, clock=clock) for _ in range(2)]
    outcomes = SparseOutcomes(integrations)
    metrics = Metrics(namespace="Test", service="test")

    def post(integration: Any, secret: str, account: int, talk: int, environment: TenantAdmission) -> dict[str, Any]:
        fields = talk_fields("add", talk, talk * 10, talk * 100, integration.account_name, account)
        body = sample_body("amo_hook", "talk_add.json", **fields)

        def accept(integration_id: str, given: str, raw: bytes) -> Any:
            return accept_amocrm(integrations, inbox, integration_id, given, raw, admit=environment.admit)

        return handle_hook(event(integration.integration_id, secret, body), accept, Logger(), metrics, outcomes)

    storm_answers = [post(storm, storm_secret, storm_account, 30_000 + n, environments[n % 2]) for n in range(60)]
    quiet_answers = [post(quiet, quiet_secret, quiet_account, 40_000 + n, environments[n % 2]) for n in range(8)]

    statuses = [answer["statusCode"] for answer in storm_answers]
    assert statuses.count(200) == 40  # 5 quiet in each environment, and the shared 30 of the window
    assert statuses.count(429) == 20
    throttled = next(answer for answer in storm_answers if answer["statusCode"] == 429)
    assert throttled["headers"]["Retry-After"] == "10"
    assert json.loads(throttled["body"]) == {"error": "throttled", "retry_after": 10}
    assert [answer["statusCode"] for answer in quiet_answers] == [200] * 8
    status = integrations.status(storm.integration_id)
    assert status["last_refusal"] == "throttled"
    assert status["refused_throttled"] == 1  # a storm's refusals are written once a minute, not each

    clock.now += 10  # the next window: the storm's share is back
    assert post(storm, storm_secret, storm_account, 39_999, environments[0])["statusCode"] == 200


def test_two_environments_starting_the_same_window_both_take_from_it(runner: LocalRunner) -> None:
    """Environment B finds no window (its add fails), A starts it, B's start then fails: B takes from A's window
    instead of refusing a quiet integration's delivery."""
    table = runner.stack.ref("LimitsTable")
    other = DynamoHookBudgets(table)

    class RacedBudgets(DynamoHookBudgets):
        def _update(self, key: str, expression: str, condition: str, window: int, count: int, left: int) -> bool:
            answer = super()._update(key, expression, condition, window, count, left)
            if expression.startswith("ADD") and self.writes == 1:  # between B's two writes, A starts the window
                assert other.take(key, window, count, 30)
            return answer

    raced = RacedBudgets(table)
    assert raced.take("hook:raced-integration", 7, 10, 30)
    assert raced.writes == 3
    assert raced.take("hook:raced-integration", 7, 10, 30)  # 30 of 30 taken: the window is full now
    assert not raced.take("hook:raced-integration", 7, 10, 30)


def test_the_first_chunk_of_a_window_costs_one_write(runner: LocalRunner) -> None:
    """A quiet integration's burst: the window is new, so starting it is tried first (one write, not two); another
    environment that starts the same window then takes from it as it stands."""
    table = runner.stack.ref("LimitsTable")
    first, second = DynamoHookBudgets(table), DynamoHookBudgets(table)
    assert first.take("hook:bursty-integration", 11, 10, 30, new_window=True)
    assert first.writes == 1
    assert second.take("hook:bursty-integration", 11, 10, 30, new_window=True)
    assert second.writes == 2  # its start refused (the window is there), then taken from it
    assert first.take("hook:bursty-integration", 11, 10, 30)
    assert first.writes == 2
    assert not second.take("hook:bursty-integration", 11, 10, 30)  # 30 of 30

"""The code may only use what template.yaml creates: tables, indexes, queues, variables, permissions."""

from __future__ import annotations

import json

import pytest

from leadbridge.config import ApiConfig, HookConfig, OAuthConfig, RefresherConfig, SweepConfig, WorkerConfig
from leadbridge.store.tokens import REFRESH_INDEX
from leadbridge_local.runner import LocalRunner
from leadbridge_local.template import load_template, resources_of_type

CONFIGS = {
    "AmoHookFunction": HookConfig,
    "BitrixHookFunction": HookConfig,
    "LeadWorkerFunction": WorkerConfig,
    "OAuthCallbackFunction": OAuthConfig,
    "TokenRefresherFunction": RefresherConfig,
    "IntegrationsApiFunction": ApiConfig,
    "ReconcileSweepFunction": SweepConfig,
}


@pytest.mark.parametrize(("function", "config"), CONFIGS.items())
def test_each_function_gets_every_variable_its_config_needs(runner: LocalRunner, function: str, config: type) -> None:
    config.from_env(runner.stack.function_environments[function])  # type: ignore[attr-defined]


def test_tables_indexes_and_queues_exist_locally_as_in_the_template(runner: LocalRunner) -> None:
    dynamodb = runner.stack.client("dynamodb")
    table = dynamodb.describe_table(TableName=runner.stack.ref("IntegrationsTable"))["Table"]
    assert REFRESH_INDEX in {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    sqs = runner.stack.client("sqs")
    inbox = sqs.get_queue_attributes(QueueUrl=runner.stack.ref("InboxQueue"), AttributeNames=["All"])["Attributes"]
    assert inbox["FifoQueue"] == "true"
    assert json.loads(inbox["RedrivePolicy"])["deadLetterTargetArn"].endswith("inbox-dlq.fifo")


def test_queue_visibility_is_at_least_six_times_the_consumer_timeout() -> None:
    template = load_template()
    functions = resources_of_type(template, "AWS::Serverless::Function")
    for spec in functions.values():
        for event in spec["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
                visibility = template["Resources"][queue]["Properties"]["VisibilityTimeout"]
                assert visibility >= 6 * spec["Properties"]["Timeout"]


def test_every_dead_letter_queue_has_an_alarm() -> None:
    template = load_template()
    dlqs = {
        name
        for name, spec in template["Resources"].items()
        if spec["Type"] == "AWS::SQS::Queue" and "DeadLetter" in name
    }
    alarmed = {
        spec["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for spec in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if spec["Properties"]["Namespace"] == "AWS/SQS"
    }
    assert dlqs
    assert dlqs == alarmed


def test_hooks_may_only_read_the_integrations_table_and_send_to_the_inbox() -> None:
    template = load_template()
    for name in ("AmoHookFunction", "BitrixHookFunction"):
        policies = json.dumps(template["Resources"][name]["Properties"]["Policies"])
        assert "dynamodb:GetItem" in policies
        assert "PutItem" not in policies
        assert "LeadLedgerTable" not in policies
        assert "LeadsQueue" not in policies

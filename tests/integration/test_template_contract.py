"""The code may only use what template.yaml creates: tables, indexes, queues, variables, permissions."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from leadbridge.aws.config import ApiConfig, HookConfig, JobsConfig, OAuthConfig, SchedulerConfig, WorkerConfig
from leadbridge.aws.store.tokens import REFRESH_INDEX
from leadbridge.aws.store.work_index import WORK_INDEX
from leadbridge_local.runner import LocalRunner
from leadbridge_local.template import load_template, resources_of_type
from tests.conftest import REPO

CONFIGS = {
    "AmoHookFunction": HookConfig,
    "BitrixHookFunction": HookConfig,
    "LeadWorkerFunction": WorkerConfig,
    "OAuthCallbackFunction": OAuthConfig,
    "IntegrationsApiFunction": ApiConfig,
    "SchedulerFunction": SchedulerConfig,
    "ScheduledJobsFunction": JobsConfig,
}


@pytest.mark.parametrize(("function", "config"), CONFIGS.items())
def test_each_function_gets_every_variable_its_config_needs(runner: LocalRunner, function: str, config: type) -> None:
    config.from_env(runner.stack.function_environments[function])  # type: ignore[attr-defined]


def test_tables_indexes_and_queues_exist_locally_as_in_the_template(runner: LocalRunner) -> None:
    dynamodb = runner.stack.client("dynamodb")
    table = dynamodb.describe_table(TableName=runner.stack.ref("IntegrationsTable"))["Table"]
    assert {REFRESH_INDEX, WORK_INDEX} <= {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
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
        if spec["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert dlqs
    assert dlqs == alarmed


# Every DynamoDB action a hook may take, on which table, limited to which partition keys. The hooks never reach a
# token item (``TOKEN#<id>``, a partition of its own) and never read the ledger; each write is pinned to its keys.
HOOK_DYNAMODB: dict[str, dict[tuple[str, str], list[str]]] = {
    "AmoHookFunction": {
        ("dynamodb:GetItem", "IntegrationsTable"): ["INTEGRATION#*"],  # settings
        ("dynamodb:UpdateItem", "IntegrationsTable"): ["INTEGRATION#*"],  # status: dropped, refused, taken
        ("dynamodb:PutItem", "LeadLedgerTable"): ["amocrm:*#session", "amocrm:*#bot-token:*"],  # Salesbot, signed
        ("dynamodb:DeleteItem", "LeadLedgerTable"): ["amocrm:*#bot-token:*"],  # a token whose request failed
        ("dynamodb:UpdateItem", "LimitsTable"): ["hook:*", "hook-refused:*"],  # its per-integration admission
    },
    "BitrixHookFunction": {
        ("dynamodb:GetItem", "IntegrationsTable"): ["INTEGRATION#*"],  # settings
        ("dynamodb:UpdateItem", "IntegrationsTable"): ["INTEGRATION#*"],  # status: deliveries and refusals
        ("dynamodb:UpdateItem", "LimitsTable"): ["hook:*", "hook-refused:*"],  # its per-integration admission
    },
    "ChatChannelHookFunction": {
        ("dynamodb:GetItem", "IntegrationsTable"): ["CHATSCOPE#*"],  # the scope index
        ("dynamodb:PutItem", "LeadLedgerTable"): ["amojo:*#reply:*"],  # the replies already taken
        ("dynamodb:DeleteItem", "LeadLedgerTable"): ["amojo:*#reply:*"],  # one whose queue write failed
    },
}
# The hooks' status writes: their own counters and stamps only.
DROPPED_ONLY = [
    "pk",
    "sk",
    "dropped_*",
    "last_dropped_at",
    "refused_*",
    "ignored_*",
    "last_refusal",
    "last_refusal_at",
    "last_webhook_at",
]


def _dynamodb_grants(statement: dict[str, Any]) -> list[tuple[str, str]]:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    resource = json.dumps(statement["Resource"])
    tables = [t for t in ("IntegrationsTable", "LeadLedgerTable", "LimitsTable") if t in resource]
    return [(a, t) for a in actions if str(a).startswith("dynamodb:") for t in tables]


def test_hooks_take_only_their_pinned_dynamodb_actions_and_never_the_leads_queue() -> None:
    template = load_template()
    for name, allowed in HOOK_DYNAMODB.items():
        statements = [s for p in template["Resources"][name]["Properties"]["Policies"] for s in p.get("Statement", [])]
        assert "LeadsQueue" not in json.dumps(template["Resources"][name]["Properties"]["Policies"])
        granted = set()
        for statement in statements:
            for grant in _dynamodb_grants(statement):
                assert grant in allowed, (name, grant)
                keys = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                assert keys == allowed[grant], (name, grant)
                if grant == ("dynamodb:UpdateItem", "IntegrationsTable"):
                    attributes = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:Attributes"]
                    # the Bitrix24 hook may also keep a connected portal's first application token
                    extra = ["application_token_hash"] if name == "BitrixHookFunction" else []
                    assert attributes == DROPPED_ONLY + extra
                if grant == ("dynamodb:UpdateItem", "LimitsTable"):  # the admission's window and count only
                    attributes = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:Attributes"]
                    assert attributes == ["limit_key", "w", "n"]
                granted.add(grant)
        assert granted == set(allowed), name


# ---------------------------------------------------------------- what CloudFormation receives (after the SAM transform)
PHYSICAL_NAME_PROPERTIES = {
    "QueueName",
    "TableName",
    "FunctionName",
    "LayerName",
    "LogGroupName",
    "AliasName",
    "TopicName",
    "RoleName",
    "Name",
}
NOT_PHYSICAL = {"AWS::ApiGatewayV2::Stage"}  # a stage's name is unique within its API only


def transformed_template() -> dict[str, Any]:
    """The SAM transform runs in the SAM CLI's virtualenv (its translator pins its own pydantic)."""
    sam_python = REPO / ".venv-sam" / "bin" / "python"
    assert sam_python.exists(), "the SAM CLI's virtualenv is missing: make sam-venv"
    out = subprocess.run(
        [str(sam_python), "-m", "leadbridge_local.sam_transform"],
        env={**os.environ, "PYTHONPATH": f"{REPO / 'layers/leadbridge'}:{REPO / 'local'}"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded: dict[str, Any] = json.loads(out.stdout)
    return loaded


@pytest.fixture(scope="module")
def cloudformation_template() -> dict[str, Any]:
    return transformed_template()


def test_the_transformed_template_lints_clean_cycles_included(
    cloudformation_template: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(cloudformation_template), encoding="utf-8")
    lint = subprocess.run(
        [str(REPO / ".venv" / "bin" / "cfn-lint"), "--format", "parseable", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in lint.stdout.splitlines() if ":E" in line]
    assert errors == [], "\n".join(errors)


def test_no_resource_has_a_fixed_physical_name(cloudformation_template: dict[str, Any]) -> None:
    """Two stacks (dev, prod) in one account and region: every name CloudFormation does not choose has the stack's."""
    fixed = []
    for logical_id, resource in cloudformation_template["Resources"].items():
        if resource["Type"] in NOT_PHYSICAL:
            continue
        for prop, value in resource.get("Properties", {}).items():
            if prop in PHYSICAL_NAME_PROPERTIES and _names_itself(value):
                fixed.append(f"{logical_id}.{prop} = {value}")
    assert fixed == []


def _names_itself(value: Any) -> bool:
    """A literal, or a string built without the stack's name; a reference to another resource names nothing."""
    if isinstance(value, dict) and ({"Ref", "Fn::GetAtt"} & set(value)):
        return False
    return "AWS::StackName" not in json.dumps(value)


def test_token_items_are_out_of_the_hooks_reach_and_nothing_encrypts_with_kms(
    cloudformation_template: dict[str, Any],
) -> None:
    resources = cloudformation_template["Resources"]
    for function, allowed in HOOK_DYNAMODB.items():
        role = f"{function}Role"
        statements = [s for p in resources[role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
        grants = [s for s in statements if any(str(a).startswith("dynamodb:") for a in _actions(s))]
        assert grants
        for statement in grants:
            for action in _actions(statement):
                [table] = [t for (a, t) in allowed if a == action and t in json.dumps(statement["Resource"])]
                keys = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                assert keys == allowed[(action, table)], (role, action)
                assert not any(k.startswith("TOKEN#") for k in keys)
    for name, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    assert not {"kms:Encrypt", "kms:GenerateDataKey"} & set(_actions(statement)), name


def test_the_alarm_topic_key_lets_cloudwatch_publish(cloudformation_template: dict[str, Any]) -> None:
    resources = cloudformation_template["Resources"]
    key_ref = resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    assert key_ref == {"Ref": "AlarmKey"}  # not alias/aws/sns, which CloudWatch alarms cannot use
    statements = resources["AlarmKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert any(
        s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com" and "kms:Decrypt" in _actions(s)
        for s in statements
    )
    assert resources["DataKey"]["DeletionPolicy"] == resources["IntegrationsTable"]["DeletionPolicy"] == "Retain"


def test_every_function_logs_to_a_group_with_a_retention(cloudformation_template: dict[str, Any]) -> None:
    resources = cloudformation_template["Resources"]
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Function":
            group = resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_only_items_meant_to_expire_carry_the_ttl_attribute(runner: LocalRunner) -> None:
    table = runner.stack.ref("IntegrationsTable")
    ttl_attribute = load_template()["Resources"]["IntegrationsTable"]["Properties"]["TimeToLiveSpecification"]
    items = runner.stack.client("dynamodb").scan(TableName=table)["Items"]
    carrying = {item["pk"]["S"].split("#")[0] + "/" + item["sk"]["S"].split("#")[0] for item in items if "ttl" in item}
    assert ttl_attribute["AttributeName"] == "ttl"
    # OAuth state nonces and the pickers' cache only; never TOKEN, SETTINGS, STATUS, PARKED
    assert carrying <= {"INTEGRATION/STATE", "INTEGRATION/CRM_LIST"}


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else list(actions)

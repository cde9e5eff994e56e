"""Least privilege, measured: every AWS call a function made during the whole suite is allowed by its own policy in
``template.yaml``. Runs last (this folder sorts last), over what the session's local runner recorded."""

from __future__ import annotations

import re
from typing import Any

from leadbridge_local.aws_calls import EVENT_SOURCE_ACTIONS
from leadbridge_local.runner import LocalRunner
from leadbridge_local.template import load_template, resources_of_type

SAM_POLICY_TEMPLATES = {"AWSSecretsManagerGetSecretValuePolicy": ("secretsmanager:GetSecretValue", "SecretArn")}


def allowed(function: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, resource logical id) pairs the function's policies allow."""
    pairs: set[tuple[str, str]] = set()
    for policy in function["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            pairs |= {(action, _logical(resource)) for action in actions for resource in resources}
        for name, (action, argument) in SAM_POLICY_TEMPLATES.items():
            if name in policy:
                pairs.add((action, _logical(policy[name][argument])))
    for event in function["Properties"].get("Events", {}).values():
        if event["Type"] == "SQS":  # the event source mapping polls with the function's role
            pairs |= {(action, _logical(event["Properties"]["Queue"])) for action in EVENT_SOURCE_ACTIONS}
    return pairs


def _logical(resource: Any) -> str:
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        return str(resource["Fn::GetAtt"][0])
    if isinstance(resource, dict) and "Ref" in resource:
        return str(resource["Ref"])
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        return re.sub(r"\$\{(\w+)\.Arn\}", r"\1", str(resource["Fn::Sub"]))
    return str(resource)


def test_every_recorded_call_is_allowed_by_the_functions_own_policy(runner: LocalRunner) -> None:
    functions = resources_of_type(load_template(), "AWS::Serverless::Function")
    recorded = runner.aws_calls.calls
    assert len(recorded) >= 5, f"too few functions were invoked to measure anything: {sorted(recorded)}"
    denied = {
        function: sorted(calls - allowed(functions[function]))
        for function, calls in recorded.items()
        if calls - allowed(functions[function])
    }
    unused = {
        function: sorted(allowed(functions[function]) - recorded.get(function, set()))
        for function in functions
        if function in recorded
    }
    print("\npermissions no test exercised (the integrations API is mostly tested in-process):")
    for function, pairs in unused.items():
        print(f"  {function}: {pairs}")
    assert denied == {}, f"calls the template does not allow: {denied}"

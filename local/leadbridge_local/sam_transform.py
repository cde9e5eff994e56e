"""``template.yaml`` as CloudFormation receives it: after the SAM transform.

``cfn-lint`` skips some checks on SAM resource types (circular dependencies among them), so ``make template``
lints this output too. Code locations are placeholders: the transform needs a location, not the code. It runs in
the SAM CLI's virtualenv (the translator pins its own pydantic): ``.venv-sam/bin/python -m leadbridge_local.sam_transform``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from leadbridge_local.template import TEMPLATE_PATH

MANAGED_POLICIES = (
    "AWSLambdaBasicExecutionRole",
    "AWSLambdaSQSQueueExecutionRole",
    "AWSLambdaRole",
    "AWSXrayWriteOnlyAccess",
    "AWSXRayDaemonWriteAccess",
    "AWSLambdaVPCAccessExecutionRole",
)


class _ManagedPolicies:
    """The transform looks AWS managed policies up by name; offline, their well-known ARNs."""

    def load(self) -> dict[str, str]:
        return {name: f"arn:aws:iam::aws:policy/service-role/{name}" for name in MANAGED_POLICIES}


def transformed(region: str = "eu-central-1", account_id: str = "123456789012") -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", region)  # the translator asks for one even offline
    template: dict[str, Any] = yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))
    for name, resource in template.get("Resources", {}).items():
        properties = resource.setdefault("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function":
            properties["CodeUri"] = f"s3://artifacts/{name}.zip"
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = f"s3://artifacts/{name}.zip"
    result: dict[str, Any] = transform(
        template, {"AWS::Region": region, "AWS::AccountId": account_id}, _ManagedPolicies()
    )
    return result


def main() -> int:
    json.dump(transformed(), sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

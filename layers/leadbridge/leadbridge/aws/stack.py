"""A deployed stack's resources by logical id (the operators' commands find their tables so)."""

from __future__ import annotations

import boto3


def stack_table(stack: str) -> str:
    found = boto3.client("cloudformation").describe_stack_resource(
        StackName=stack, LogicalResourceId="IntegrationsTable"
    )
    name: str = found["StackResourceDetail"]["PhysicalResourceId"]
    return name

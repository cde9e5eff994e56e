"""Secrets Manager values: read once per process (the OAuth state key), or each time asked (a value that an
operator may put in after the deploy, read by callers that cache it for minutes: the chat channel)."""

from __future__ import annotations

from functools import cache

import boto3

from leadbridge.aws.request_count import counted


@cache
def secret_string(secret_arn: str) -> str:
    return secret_string_fresh(secret_arn)


def secret_string_fresh(secret_arn: str) -> str:
    value = counted(boto3.client("secretsmanager")).get_secret_value(SecretId=secret_arn)["SecretString"]
    if not value:
        raise RuntimeError("the secret is empty")
    return value

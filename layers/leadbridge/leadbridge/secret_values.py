"""Secrets Manager values, read once per process (the OAuth state key)."""

from __future__ import annotations

from functools import cache

import boto3


@cache
def secret_string(secret_arn: str) -> str:
    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    if not value:
        raise RuntimeError("the secret is empty")
    return value

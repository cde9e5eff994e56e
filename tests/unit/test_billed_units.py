"""The local AWS prices requests the way AWS bills them (``billed_units``), so the benchmarks' cost per lead is not
read off a request count that hides batch reads, transactions or large SQS payloads."""

from __future__ import annotations

import json

from leadbridge_local.aws import billed_units


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_batch_reads_count_their_items_and_transactions_two_units_an_item() -> None:
    keys = [{"lead_key": {"S": str(n)}} for n in range(7)]
    request = {"RequestItems": {"ledger": {"Keys": keys}, "integrations": {"Keys": keys[:3]}}}
    assert billed_units("dynamodb:BatchGetItem", body(request)) == 10
    transaction = {"TransactItems": [{"Update": {}}, {"Update": {}}, {"ConditionCheck": {}}]}
    assert billed_units("dynamodb:TransactWriteItems", body(transaction)) == 6


def test_sqs_bills_each_64_kib_of_a_requests_payload() -> None:
    small = [{"Id": str(n), "MessageBody": "x" * 3_000} for n in range(10)]
    assert billed_units("sqs:SendMessageBatch", body({"Entries": small})) == 1
    large = [{"Id": str(n), "MessageBody": "я" * 20_000} for n in range(5)]  # 200,000 bytes of UTF-8
    assert billed_units("sqs:SendMessageBatch", body({"Entries": large})) == 4
    assert billed_units("sqs:SendMessage", body({"MessageBody": ""})) == 1
    assert billed_units("sqs:SendMessage", b"not json") == 1

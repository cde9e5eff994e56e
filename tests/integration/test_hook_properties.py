"""Property: whatever arrives at a webhook route, the answer is 2xx or 4xx, and a rejection enqueues nothing."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadbridge_local.lambda_events import http_api_event
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import new_amo_integration, new_bitrix_integration

FUNCTIONS = {"amocrm": "AmoHookFunction", "bitrix24": "BitrixHookFunction"}
segments = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)
form_keys = st.sampled_from(
    [
        "talk[add][0][talk_id]",
        "talk[update][0][talk_id]",
        "account[id]",
        "account[subdomain]",
        "event",
        "data[FIELDS][ID]",
        "auth[member_id]",
        "auth[application_token]",
        "auth[domain]",
        "x[",
        "a[][]",
    ]
)
form_bodies = st.lists(st.tuples(form_keys, st.text(max_size=20)), max_size=8).map(
    lambda kv: "&".join(f"{quote(k)}={quote(v)}" for k, v in kv).encode()
)
bodies = st.one_of(st.binary(max_size=600), form_bodies)
headers = st.dictionaries(
    st.sampled_from(["content-type", "user-agent", "x-amocrm-requestid", "content-encoding"]),
    st.text(max_size=30),
    max_size=3,
)


def check(
    runner: LocalRunner, crm: str, integration_id: str, secret: str, body: bytes, head: dict[str, str], base64: bool
) -> None:
    route = f"/hooks/{crm}/{{integration_id}}/{{secret}}/"
    path = f"/hooks/{crm}/{quote(integration_id, safe='')}/{quote(secret, safe='')}/"
    event = http_api_event("POST", route, path, {"integration_id": integration_id, "secret": secret}, "", head, body)
    if base64 and not event["isBase64Encoded"]:
        import base64 as b64

        event["body"], event["isBase64Encoded"] = b64.b64encode(body).decode(), True
    before = runner.queue_depth("InboxQueue")
    response = runner.invoke(FUNCTIONS[crm], event)
    status = response["statusCode"]
    assert 200 <= status < 500, (status, response["body"])
    if status >= 400:
        assert runner.queue_depth("InboxQueue") == before


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    crm=st.sampled_from(["amocrm", "bitrix24"]),
    integration_id=segments,
    secret=segments,
    body=bodies,
    head=headers,
    b64=st.booleans(),
)
def test_any_path_any_body_any_headers(
    runner: LocalRunner, crm: str, integration_id: str, secret: str, body: bytes, head: dict[str, str], b64: bool
) -> None:
    check(runner, crm, integration_id, secret, body, head, b64)


def test_any_body_for_a_real_integration_with_its_secret(runner: LocalRunner) -> None:
    amo, amo_secret, _ = new_amo_integration(runner)
    b24, b24_secret, _, _ = new_bitrix_integration(runner)

    @settings(max_examples=150, deadline=None)
    @given(body=bodies, head=headers, b64=st.booleans(), crm=st.sampled_from(["amocrm", "bitrix24"]))
    def run(body: bytes, head: dict[str, str], b64: bool, crm: str) -> None:
        integration, secret = (amo, amo_secret) if crm == "amocrm" else (b24, b24_secret)
        check(runner, crm, integration.integration_id, secret, body, head, b64)

    try:
        run()
    finally:
        # Whatever was accepted belongs to no real conversation; keep it out of the other tests' drains.
        runner.stack.client("sqs").purge_queue(QueueUrl=runner.stack.ref("InboxQueue"))

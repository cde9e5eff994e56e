"""Untrusted input of the digital-pipeline hooks: the Salesbot JWT, the trigger body, the bot's continue URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.bot_token import InvalidBotToken, sign_bot_token, verify_bot_token
from leadbridge.crms.amocrm.continue_url import continue_url_allowed
from leadbridge.crms.amocrm.pipeline_triggers import MalformedTrigger, parse_trigger

NOW = 1_796_000_000
SECRET = "client-secret-of-the-integration"
ids = st.integers(min_value=1, max_value=2**53)
claims = st.fixed_dictionaries(
    {
        "iat": st.integers(NOW - 300, NOW),
        "exp": st.integers(NOW, NOW + 3_600),
        "account_id": ids,
        "subdomain": st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
        "entity_type": st.sampled_from(["leads", "contacts"]),
        "entity_id": ids,
    },
    optional={"aud": st.text(max_size=50), "iss": st.text(max_size=50), "jti": st.text(max_size=20)},
)


@given(claims=claims)
def test_a_token_amocrm_signed_verifies_with_its_claims(claims: dict[str, object]) -> None:
    verified = verify_bot_token(sign_bot_token(claims, SECRET), SECRET, NOW)
    assert (verified.account_id, verified.entity_id) == (str(claims["account_id"]), str(claims["entity_id"]))
    assert verified.subdomain == claims["subdomain"]


@given(claims=claims, position=st.integers(min_value=0), replacement=st.sampled_from("AQgw_-9z"))
def test_any_change_to_the_signed_part_is_refused(claims: dict[str, object], position: int, replacement: str) -> None:
    token = sign_bot_token(claims, SECRET)
    signed_length = token.rindex(".")
    index = position % signed_length
    if token[index] in {".", replacement}:
        return
    altered = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(InvalidBotToken):
        verify_bot_token(altered, SECRET, NOW)


@given(claims=claims)
def test_another_secret_an_expired_token_and_none_are_refused(claims: dict[str, object]) -> None:
    token = sign_bot_token(claims, SECRET)
    with pytest.raises(InvalidBotToken):
        verify_bot_token(token, "another-secret", NOW)
    with pytest.raises(InvalidBotToken):
        verify_bot_token(token, SECRET, int(str(claims["exp"])) + 61)
    with pytest.raises(InvalidBotToken):
        verify_bot_token(token, None, NOW)
    header, body, _ = token.split(".")
    with pytest.raises(InvalidBotToken):
        verify_bot_token(f"{header}.{body}.", SECRET, NOW)


@given(token=st.one_of(st.text(max_size=300), st.binary(max_size=300), st.none(), st.integers()))
def test_garbage_is_refused_with_the_one_error(token: object) -> None:
    with pytest.raises(InvalidBotToken):
        verify_bot_token(token, SECRET, NOW)


@given(body=st.binary(max_size=2_000), json_type=st.booleans())
def test_the_trigger_parser_takes_any_bytes(body: bytes, json_type: bool) -> None:
    try:
        parsed = parse_trigger(body, "application/json" if json_type else "application/x-www-form-urlencoded")
    except MalformedTrigger:
        return
    assert all(trigger.lead_id.isdigit() for trigger in parsed.triggers)
    assert parsed.triggers or parsed.ignored


@given(
    tree=st.recursive(
        st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none()),
        lambda inner: st.one_of(st.dictionaries(st.text(max_size=10), inner, max_size=5), st.lists(inner, max_size=4)),
        max_leaves=30,
    )
)
def test_the_trigger_parser_takes_any_json(tree: object) -> None:
    try:
        parsed = parse_trigger(json.dumps(tree).encode(), "application/json")
    except MalformedTrigger:
        return
    assert all(trigger.lead_id.isdigit() for trigger in parsed.triggers)
    assert parsed.triggers or parsed.ignored


def test_the_trigger_shapes_amocrm_sends() -> None:
    form = b"event[type]=19&event[type_code]=chat&event[data][id]=42&event[data][element_type]=2&subdomain=shop&account_id=7"
    parsed = parse_trigger(form, "application/x-www-form-urlencoded")
    [trigger] = parsed.triggers
    assert (trigger.lead_id, trigger.is_chat, parsed.subdomain, parsed.account_id) == ("42", True, "shop", "7")
    customer = b"event[type]=20&event[data][id]=42&event[data][element_type]=12&subdomain=shop"
    assert parse_trigger(customer, "").ignored == {"not_a_lead": 1}
    as_json = json.dumps({"event": {"type": 1, "data": {"id": 5, "element_type": 2}}, "account_id": 7}).encode()
    [found] = parse_trigger(as_json, "application/json").triggers
    assert found.type_code == "lead_added"


def test_a_lead_leaving_the_triggers_stage_announces_nothing() -> None:
    """Seed 004: ``went_from_trigger``, the lead moved from the trigger's stage to one without it."""
    left = b"event[type]=14&event[data][id]=42&event[data][element_type]=2&event[data][direction_of_movement]=went_from_trigger&subdomain=shop&account_id=7"
    assert parse_trigger(left, "") == ("shop", "7", (), {"went_from_trigger": 1})
    arrived = left.replace(b"went_from_trigger", b"went_to_trigger")
    assert [t.lead_id for t in parse_trigger(arrived, "").triggers] == ["42"]


def test_the_stage_action_send_webhook_becomes_the_same_triggers() -> None:
    """«API: отправить webhook» (reference E.2): ``leads[<action>][i]``, the account as in account webhooks."""
    body = (
        b"leads[status][0][id]=4921027&leads[status][0][status_id]=16203334&leads[status][0][pipeline_id]=752662"
        b"&leads[status][0][old_status_id]=142&leads[status][1][id]=4921028&leads[status][1][status_id]=16203334"
        b"&account[id]=7&account[subdomain]=shop"
    )
    parsed = parse_trigger(body, "application/x-www-form-urlencoded")
    assert (parsed.subdomain, parsed.account_id, parsed.ignored) == ("shop", "7", {})
    assert [(t.lead_id, t.type_code, t.status_id, t.pipeline_id) for t in parsed.triggers] == [
        ("4921027", "lead_appeared_in_status", "16203334", "752662"),
        ("4921028", "lead_appeared_in_status", "16203334", None),
    ]
    chat = parse_trigger(b"leads[chat][0][id]=5&leads[mail_in][0][id]=6&account[id]=7", "")
    assert [(t.lead_id, t.is_chat) for t in chat.triggers] == [("5", True)]
    assert chat.ignored == {"action_mail_in": 1}
    as_json = json.dumps({"leads": {"status": [{"id": 9, "status_id": 1}]}, "account": {"id": 7}}).encode()
    assert [t.lead_id for t in parse_trigger(as_json, "application/json").triggers] == ["9"]  # the docs' JSON
    no_id = parse_trigger(b"leads[status][0][name]=x&leads[status][1][id]=8&account[id]=7", "")
    assert [t.lead_id for t in no_id.triggers] == ["8"]  # sent once: the item without an id is skipped, counted
    assert no_id.ignored == {"malformed_item": 1}


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://shop.amocrm.ru/api/v4/salesbot/321/continue/123", True),
        ("https://shop.amocrm.ru/api/v4/marketingbot/1/continue/ab-c_1", True),
        ("http://shop.amocrm.ru/api/v4/salesbot/321/continue/123", False),
        ("https://evil.example/api/v4/salesbot/321/continue/123", False),
        ("https://shop.amocrm.ru.evil.example/api/v4/salesbot/321/continue/123", False),
        ("https://shop.amocrm.ru:8443/api/v4/salesbot/321/continue/123", False),
        ("https://user@shop.amocrm.ru/api/v4/salesbot/321/continue/123", False),
        ("https://shop.amocrm.ru/api/v4/leads/1", False),
        ("https://shop.amocrm.ru/api/v4/salesbot/321/continue/123?x=1", False),
        ("https://shop.amocrm.ru/api/v4/salesbot/321/continue/../../leads", False),
        ("https://[::1/api", False),
    ],
)
def test_only_the_accounts_own_continue_url_gets_the_token(url: str, allowed: bool) -> None:
    integration = Integration(integration_id="a", crm="amocrm", crm_domain="shop.amocrm.ru")
    assert continue_url_allowed(integration, url) is allowed


def _signed_raw(claims_json: str, secret: str = SECRET) -> str:
    """A token over claims written by hand (JSON that ``json.dumps`` would never write, such as ``1e400``)."""
    header = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"HS512"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(claims_json.encode()).rstrip(b"=").decode()
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha512).digest()
    return f"{header}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.parametrize("exp", ["1e400", "NaN", "Infinity", "-Infinity", "1e30", "-1"])
def test_a_signed_token_with_a_time_that_is_no_time_is_refused_not_a_crash(exp: str) -> None:
    token = _signed_raw(f'{{"exp":{exp},"account_id":7,"entity_type":"leads","entity_id":5}}')
    with pytest.raises(InvalidBotToken):
        verify_bot_token(token, SECRET, NOW)


def test_an_amojo_body_nested_thousands_deep_is_a_400() -> None:
    from leadbridge.crms.amocrm.chat_channel.credentials import ChannelCredentials
    from leadbridge.crms.amocrm.chat_channel.signing import hook_signature
    from leadbridge.flows.hooks.chat_replies import accept_reply_hook

    body = b"[" * 20_000 + b"]" * 20_000  # 40 KB: under the size cap
    channel = ChannelCredentials(channel_id="c", channel_code="leadbridge", secret=SECRET, bot_id="b")
    result = accept_reply_hook(channel, None, None, "c_acc", body, hook_signature(SECRET, body))  # type: ignore[arg-type]
    assert (result.status, result.reason) == (400, "malformed_body")

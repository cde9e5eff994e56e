"""amojo signing both ways: what the service signs, amojo's check accepts (and nothing altered); hooks likewise."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from leadbridge.crms.amocrm.chat_channel.credentials import ChannelCredentials
from leadbridge.crms.amocrm.chat_channel.signing import (
    content_md5,
    hook_signature,
    hook_signature_valid,
    request_signature,
    request_signature_valid,
    signed_headers,
)
from leadbridge.flows.hooks.chat_replies import reply_from_hook
from tests.conftest import load_event

NOW = 1_796_000_000
secrets_ = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
paths = st.from_regex(r"/v2/origin/custom/[A-Za-z0-9_-]{1,80}(/[A-Za-z0-9_-]{1,40}){0,2}", fullmatch=True)
methods = st.sampled_from(["GET", "POST", "DELETE"])


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@given(secret=secrets_, method=methods, path=paths, body=st.binary(max_size=4_000))
def test_the_signer_and_amojos_check_agree_on_any_body_and_path(
    secret: str, method: str, path: str, body: bytes
) -> None:
    headers = lowered(signed_headers(secret, method, path, body, NOW))
    assert request_signature_valid(secret, method, path, body, headers)
    assert not request_signature_valid(secret, method, path, body + b" ", headers)  # the exact bytes
    assert not request_signature_valid(secret, method, path + "x", body, headers)
    assert not request_signature_valid(secret[::-1], method, path, body, headers) or secret == secret[::-1]


@given(secret=secrets_, body=st.binary(max_size=4_000), flip=st.integers(min_value=0))
def test_a_hook_verifies_only_as_signed(secret: str, body: bytes, flip: int) -> None:
    signature = hook_signature(secret, body)
    assert hook_signature_valid(secret, body, signature)
    assert hook_signature_valid(secret, body + b"\n", signature)  # peers trim a trailing newline
    if body:
        index = flip % len(body)
        altered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        assert not hook_signature_valid(secret, altered, signature)
    assert not hook_signature_valid(secret, body, "")


def test_the_documented_example_signs_as_computed_in_the_reference() -> None:
    body = b'{"account_id":"af9945ff-1490-4cad-807d-945c15d88bec","title":"ScopeTitle","hook_api_version":"v2"}'
    md5 = content_md5(body)
    assert md5 == "a5e8ae04332a6d0aac15f01ad05d40e3"
    signature = request_signature(
        "5a44c5dff55f3c15a4cce8d7c4cc27e207c7e189",
        "POST",
        md5,
        "application/json",
        "Thu, 29 Oct 2020 11:59:55 +0000",
        "/v2/origin/custom/f90ba33d-c9d9-44da-b76c-c349b0ecbe41/connect",
    )
    assert signature == "e0dcc1936d766a7d5f53fe19887fafa50bef92e0"
    assert content_md5(b"") == "d41d8cd98f00b204e9800998ecf8427e"  # a GET signs the empty body


def test_the_sample_reply_hook_reads_as_a_reply() -> None:
    event = load_event("chat_channel_hook", "manager_reply.json")
    reply = reply_from_hook(event["pathParameters"]["scope_id"], "shop-amo", json.loads(event["body"]))
    assert reply is not None
    assert (reply["conversation_id"], reply["visitor_id"], reply["type"]) == ("conv-5f2836a8", "visitor-77a1", "text")
    assert reply_from_hook("s", "i", {"action": {"typing": {}}}) is None


def test_credentials_never_show_the_secret() -> None:
    raw = json.dumps({"channel_id": "f90ba33d-c9d9", "channel_code": "amo.ext.1_v2", "secret": "s3cr3t", "bot_id": ""})
    credentials = ChannelCredentials.parse(raw)
    assert "s3cr3t" not in repr(credentials)
    assert "s3cr3t" not in str(credentials)


def test_content_md5_matches_the_vendors_own_example() -> None:
    """amoCRM's Chats API step-by-step text (seed 003) shows the connect request with this Content-MD5, and the
    reference (amocrm.md §4.1) gives the body it was computed from: the one value of that page that can be
    reproduced. (Its X-Signature examples do not verify with the documented example secret, so they cannot serve
    as vectors; the project's own round-trip properties above cover the HMAC.)"""
    body = b'{"account_id":"af9945ff-1490-4cad-807d-945c15d88bec","title":"ScopeTitle","hook_api_version":"v2"}'
    assert content_md5(body) == "a5e8ae04332a6d0aac15f01ad05d40e3"
    assert content_md5(b"") == "d41d8cd98f00b204e9800998ecf8427e"  # GET: the md5 of the empty string


def test_an_unconfigured_channel_is_read_once_in_a_while_not_per_lead() -> None:
    """The default after a deploy: the placeholder secret names no channel. Every amoCRM lead asks; the secret is
    read once per REREAD_SECONDS all the same."""
    import pytest

    from leadbridge.crms.amocrm.chat_channel.credentials import (
        REREAD_SECONDS,
        ChannelNotConfigured,
        CredentialsSource,
    )

    reads: list[int] = []
    now = [0.0]

    def read() -> str:
        reads.append(1)
        return '{"secret": "placeholder"}'

    source = CredentialsSource(read, clock=lambda: now[0])
    for _ in range(100):
        with pytest.raises(ChannelNotConfigured):
            source.get()
    assert len(reads) == 1
    now[0] += REREAD_SECONDS + 1
    with pytest.raises(ChannelNotConfigured):
        source.get()
    assert len(reads) == 2

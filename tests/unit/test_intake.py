"""The webhook request path with in-memory stand-ins for the table and the queue."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

import pytest

from leadbridge.aws.queues import InboxMessage, InboxWriteError
from leadbridge.contract.integration import Integration
from leadbridge.contract.webhook_secret import hash_secret
from leadbridge.flows.hooks.intake import accept_amocrm, accept_bitrix24

SECRET = "s3cret-value-of-enough-length-000000000000"
AMO = Integration(
    integration_id="amo",
    crm="amocrm",
    crm_domain="example.amocrm.ru",
    account_id="31337",
    webhook_secret_hash=hash_secret(SECRET),
)
B24 = Integration(
    integration_id="b24",
    crm="bitrix24",
    crm_domain="portal.bitrix24.ru",
    account_id="member-1",
    webhook_secret_hash=hash_secret(SECRET),
    application_token_hash=hash_secret("app-token"),
)


class Table:
    def __init__(self, *integrations: Integration) -> None:
        self.items = {i.integration_id: i for i in integrations}

    def get(self, integration_id: str) -> Integration | None:
        return self.items.get(integration_id)


class Inbox:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[InboxMessage] = []
        self.fail = fail

    def send_many(self, messages: list[InboxMessage]) -> None:
        if self.fail:
            raise InboxWriteError("down")
        self.sent.extend(messages)


def talk_body(*talk_ids: str, action: str = "add", subdomain: str = "example", account_id: str = "31337") -> bytes:
    fields: dict[str, str] = {}
    for index, talk_id in enumerate(talk_ids):
        fields |= {
            f"talk[{action}][{index}][talk_id]": talk_id,
            f"talk[{action}][{index}][entity_id]": "5",
            f"talk[{action}][{index}][entity_type]": "lead",
        }
    fields |= {"account[subdomain]": subdomain, "account[id]": account_id}
    return urlencode(fields).encode()


def test_two_talks_are_enqueued_and_answered_200() -> None:
    inbox = Inbox()
    result = accept_amocrm(Table(AMO), inbox, "amo", SECRET, talk_body("1", "2"))
    assert result.status == 200
    assert [m.entity_id for m in inbox.sent] == ["1", "2"]
    assert {m.lead_key for m in inbox.sent} == {"amocrm:31337:talk:1", "amocrm:31337:talk:2"}


def test_update_talk_is_enqueued_too() -> None:
    inbox = Inbox()
    assert accept_amocrm(Table(AMO), inbox, "amo", SECRET, talk_body("9", action="update")).status == 200
    assert inbox.sent[0].event == "talk.update"


@pytest.mark.parametrize(
    ("integration_id", "secret", "body", "status"),
    [
        ("amo", "wrong", talk_body("1"), 403),
        ("nope", SECRET, talk_body("1"), 404),
        ("../etc", SECRET, talk_body("1"), 404),
        ("amo", SECRET, talk_body("1", subdomain="other"), 403),
        ("amo", SECRET, talk_body("1", account_id="1"), 403),
        ("amo", SECRET, b"talk[add][0][talk_id]=1", 400),
        ("amo", SECRET, b"\xff\xfe", 400),
        ("b24", SECRET, talk_body("1"), 404),
    ],
)
def test_rejections_change_nothing(integration_id: str, secret: str, body: bytes, status: int) -> None:
    inbox = Inbox()
    assert accept_amocrm(Table(AMO, B24), inbox, integration_id, secret, body).status == status
    assert inbox.sent == []


def test_an_unusable_talk_from_the_right_account_is_answered_2xx_and_counted() -> None:
    """amoCRM retries anything >= 300 and turns the hook off after 100 bad answers: never a 4xx for what it sent."""
    inbox = Inbox()
    counted: list[tuple[str, dict[str, int]]] = []

    class Status:
        def record_dropped(self, integration_id: str, counts: dict[str, int]) -> None:
            counted.append((integration_id, counts))

    result = accept_amocrm(Table(AMO), inbox, "amo", SECRET, talk_body("x"), dropped_to=Status())
    assert (result.status, result.body, inbox.sent) == (200, {"accepted": 0, "ignored": 0, "dropped": 1}, [])
    assert counted == [("amo", {"malformed_talk": 1})]


def test_inactive_integration_is_refused() -> None:
    inbox = Inbox()
    assert accept_amocrm(Table(replace(AMO, active=False)), inbox, "amo", SECRET, talk_body("1")).status == 403
    assert inbox.sent == []


def test_other_entity_events_are_counted_not_processed() -> None:
    inbox = Inbox()
    body = urlencode(
        {
            "leads[status][0][id]": "1",
            "contacts[update][0][id]": "2",
            "account[subdomain]": "example",
            "account[id]": "31337",
        }
    )
    result = accept_amocrm(Table(AMO), inbox, "amo", SECRET, body.encode())
    assert (result.status, inbox.sent) == (200, [])
    assert result.ignored == {"leads.status": 1, "contacts.update": 1}


def test_inbox_failure_is_a_503_so_amocrm_retries() -> None:
    assert accept_amocrm(Table(AMO), Inbox(fail=True), "amo", SECRET, talk_body("1")).status == 503


def bitrix_body(
    event: str = "ONCRMLEADADD",
    token: str = "app-token",
    member: str = "member-1",
    domain: str = "portal.bitrix24.ru",
    **extra: str,
) -> bytes:
    return urlencode(
        {
            "event": event,
            "data[FIELDS][ID]": "365",
            "ts": "1766047124",
            "auth[domain]": domain,
            "auth[member_id]": member,
            "auth[application_token]": token,
            **extra,
        }
    ).encode()


def test_bitrix_lead_and_deal_are_enqueued() -> None:
    inbox = Inbox()
    assert accept_bitrix24(Table(B24), inbox, "b24", SECRET, bitrix_body()).status == 200
    assert accept_bitrix24(Table(B24), inbox, "b24", SECRET, bitrix_body("ONCRMDEALADD")).status == 200
    assert [(m.entity_type, m.lead_key) for m in inbox.sent] == [
        ("lead", "bitrix24:member-1:lead:365"),
        ("deal", "bitrix24:member-1:deal:365"),
    ]


def test_a_renamed_portal_is_known_by_its_member_and_token() -> None:
    """An admin may rename the portal at any time: ``member_id`` stays, events come with the new ``auth[domain]``
    (Bitrix24 never resends a refused one). The worker learns the new address from the old one's REST redirect."""
    inbox = Inbox()
    assert accept_bitrix24(Table(B24), inbox, "b24", SECRET, bitrix_body(domain="renamed.bitrix24.ru")).status == 200
    assert inbox.sent[0].payload["domain"] == "renamed.bitrix24.ru"
    unconnected = Table(replace(B24, account_id=None))
    assert accept_bitrix24(unconnected, Inbox(), "b24", SECRET, bitrix_body(domain="renamed.bitrix24.ru")).status == 403


def test_bitrix_application_delivery_tokens_never_reach_the_queue() -> None:
    inbox = Inbox()
    body = bitrix_body(**{"auth[access_token]": "AT-should-not-leak", "auth[refresh_token]": "RT-should-not-leak"})
    assert accept_bitrix24(Table(B24), inbox, "b24", SECRET, body).status == 200
    assert "should-not-leak" not in inbox.sent[0].to_json()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (bitrix_body(token="forged"), 403),
        (bitrix_body(member="other"), 403),
        (bitrix_body(member="other", domain="evil.bitrix24.ru"), 403),
        (b"event=ONCRMLEADADD", 400),
        (bitrix_body("ONCRMINVOICEADD"), 200),
    ],
)
def test_bitrix_rejections_and_ignored_events(body: bytes, status: int) -> None:
    inbox = Inbox()
    assert accept_bitrix24(Table(B24), inbox, "b24", SECRET, body).status == status
    assert inbox.sent == []


def test_deliveries_taken_are_written_sparsely_refusals_each_time() -> None:
    from leadbridge.flows.hooks.handler import SparseOutcomes

    written: list[tuple[str, str | None, dict[str, int]]] = []

    class Recorder:
        def record_hook(self, integration_id: str, reason: str | None, ignored: dict[str, int]) -> None:
            written.append((integration_id, reason, dict(ignored)))

    now = [0.0]
    outcomes = SparseOutcomes(Recorder(), every_seconds=60, clock=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(5):
        outcomes.record_hook("a", None, {})  # a burst of deliveries: the first is written
    outcomes.record_hook("a", None, {"ONCRMINVOICEADD": 1})  # ignored events: always
    outcomes.record_hook("a", "bad_secret", {})  # a refusal: always
    outcomes.record_hook("a", None, {})  # the delivery after a refusal: at once
    now[0] = 30.0
    outcomes.record_hook("a", None, {})
    now[0] = 91.0
    outcomes.record_hook("a", None, {})  # a minute on: again
    outcomes.record_hook("b", None, {})  # another integration: its own
    assert [(i, r) for i, r, _ in written] == [
        ("a", None),
        ("a", None),
        ("a", "bad_secret"),
        ("a", None),
        ("a", None),
        ("b", None),
    ]

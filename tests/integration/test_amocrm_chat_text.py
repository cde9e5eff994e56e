"""amoCRM chat text: message webhooks on the same hook URL are kept per talk and become the lead's ``chat``."""

from __future__ import annotations

from typing import Any

from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import new_amo_integration, sample_body, talk_fields


def message_body(sample: str, block: str, talk: int, sub: str, account: int, count: int) -> bytes:
    fields = {"account[subdomain]": sub, "account[id]": str(account)}
    fields |= {f"{block}[add][{i}][talk_id]": str(talk) for i in range(count)}
    return sample_body("amo_hook", sample, **fields)


def leads_of(runner: LocalRunner, integration_id: str) -> list[dict[str, Any]]:
    return [lead for lead in runner.take_leads() if lead["integration_id"] == integration_id]


def test_the_first_messages_of_a_talk_become_its_leads_chat_in_order_with_their_authors(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    sub = integration.account_name
    talk = 4_101
    runner.amocrm.add_talk(
        sub,
        talk,
        lead_id=41_010,
        contact_id=410_100,
        origin="telegram",
        created_at=1726581298,
        lead={},
        contact={"name": "Ann"},
    )
    url = f"/hooks/amocrm/{integration.integration_id}/{secret}/"
    incoming = message_body("message_incoming.json", "message", talk, sub, account, 2)
    outgoing = message_body("message_outgoing.json", "outgoing_message", talk, sub, account, 1)
    assert runner.post(url, outgoing).json() == {"accepted": 1, "ignored": 0}  # delivered out of order
    assert runner.post(url, incoming).json() == {"accepted": 2, "ignored": 0}
    assert runner.post(url, incoming).status_code == 200  # amoCRM retries: the same messages again
    runner.drain(timeout=60)
    assert leads_of(runner, integration.integration_id) == []  # messages never make a lead by themselves

    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", talk, 41_010, 410_100, sub, account))
    assert runner.post(url, body).status_code == 200
    runner.drain(timeout=60)
    (lead,) = leads_of(runner, integration.integration_id)
    assert [(m["author"], m["text"]) for m in lead["chat"]["messages"]] == [
        ("client", "Здравствуйте! Сколько стоит доставка в Казань?"),
        ("client", "[picture]"),
        ("operator", "Добрый день! Доставка в Казань — 2 дня, бесплатно."),
    ]
    assert lead["chat"]["messages"][0]["at"] == "2024-09-17T13:54:55Z"

    assert runner.post(url, outgoing).status_code == 200  # after the lead: kept, nothing emitted again
    runner.drain(timeout=60)
    assert leads_of(runner, integration.integration_id) == []


def test_a_talk_without_messages_has_no_chat(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub, 4_201, lead_id=42_010, contact_id=420_100, origin="vk", created_at=1726581298, lead={}, contact={}
    )
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 4_201, 42_010, 420_100, sub, account))
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.drain(timeout=60)
    (lead,) = leads_of(runner, integration.integration_id)
    assert lead["chat"] is None


def test_a_long_chat_keeps_what_fits_and_says_what_was_left_out(runner: LocalRunner) -> None:
    """60 messages of 4,000 Cyrillic characters would pass DynamoDB's 400 KB item limit: the talk keeps what fits,
    the transcript says how many were left out, and nothing is dead-lettered."""
    from urllib.parse import parse_qsl, urlencode

    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    sub, talk = integration.account_name, 4_301
    runner.amocrm.add_talk(
        sub, talk, lead_id=43_010, contact_id=430_100, origin="telegram", created_at=1726581298, lead={},
        contact={"name": "Ann"},
    )  # fmt: skip
    url = f"/hooks/amocrm/{integration.integration_id}/{secret}/"
    sample = parse_qsl(sample_body("amo_hook", "message_incoming.json").decode(), keep_blank_values=True)
    for n in range(60):
        fields = {
            "message[add][0][id]": f"long-{n}",
            "message[add][0][talk_id]": str(talk),
            "message[add][0][text]": f"{n}: " + "ж" * 3_990,
            "message[add][0][created_at]": str(1726581300 + n),
            "account[subdomain]": sub,
            "account[id]": str(account),
        }
        body = urlencode([(k, fields.get(k, v)) for k, v in sample]).encode()
        assert runner.post(url, body).status_code == 200
    runner.drain(timeout=120)
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", talk, 43_010, 430_100, sub, account))
    assert runner.post(url, body).status_code == 200
    runner.drain(timeout=60)
    assert [m for m in runner.take_messages("InboxDeadLetterQueue") if integration.integration_id in m["Body"]] == []
    (lead,) = leads_of(runner, integration.integration_id)
    texts = [m["text"] for m in lead["chat"]["messages"]]
    assert texts[0].startswith("0: ")
    assert 10 < len(texts) < 60
    assert "later messages left out" in texts[-1]

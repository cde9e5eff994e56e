"""One conversation, one lead, named right: as real accounts produce them."""

from __future__ import annotations

from typing import Any

import pytest

from leadbridge.aws.config import ApiConfig
from leadbridge.composition import integrations_service
from leadbridge.flows.api.service import IntegrationsService
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import (
    bitrix_fields,
    new_amo_integration,
    new_bitrix_integration,
    sample_body,
    talk_fields,
)


def service(runner: LocalRunner) -> IntegrationsService:
    return integrations_service(
        ApiConfig(
            runner.stack.ref("IntegrationsTable"),
            runner.stack.ref("StateSigningSecret"),
            runner.stack.ref("InboxQueue"),
            runner.base_url,
        )
    )


def leads_of(runner: LocalRunner, integration_id: str) -> list[dict[str, Any]]:
    return [lead for lead in runner.take_leads() if lead["integration_id"] == integration_id]


def convert(runner: LocalRunner, domain: str, lead_id: int, deal_id: int) -> None:
    """What Bitrix24's converter does: a deal with LEAD_ID, the lead's open-lines activity bound to the deal."""
    portal = runner.bitrix24.portals[domain]
    portal.leads[lead_id]["STATUS_ID"] = "CONVERTED"
    portal.deals[deal_id] = {**portal.leads[lead_id], "ID": str(deal_id), "LEAD_ID": str(lead_id), "STATUS_ID": "NEW"}
    for activity in portal.activities:
        if activity["OWNER_TYPE_ID"] == "1" and activity["OWNER_ID"] == str(lead_id):
            activity["OWNER_TYPE_ID"], activity["OWNER_ID"] = "2", str(deal_id)


@pytest.mark.parametrize("order", ["lead_first", "deal_first", "deal_before_its_activity"])
def test_a_bitrix24_lead_converted_to_a_deal_is_one_conversation(runner: LocalRunner, order: str) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    domain = integration.crm_domain
    runner.bitrix24.add_open_lines_lead(domain, 7_101)
    if order != "lead_first":
        convert(runner, domain, 7_101, 9_101)
    if order == "deal_before_its_activity":  # the converter has not bound the activity yet
        portal = runner.bitrix24.portals[domain]
        portal.activities = [a for a in portal.activities if a["OWNER_ID"] != "9101"]

    def deliver(event: str, entity_id: int) -> None:
        fields = bitrix_fields(integration, member, token, entity_id) | {"event": event}
        body = sample_body("bitrix_hook", "lead_telegram_without_session.json", **fields)
        assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 200

    if order == "lead_first":
        deliver("ONCRMLEADADD", 7_101)
        runner.drain(timeout=60)
        convert(runner, domain, 7_101, 9_101)
        deliver("ONCRMDEALADD", 9_101)
    else:
        deliver("ONCRMDEALADD", 9_101)
        runner.drain(timeout=60)
        deliver("ONCRMLEADADD", 7_101)
    runner.drain(timeout=60)
    leads = leads_of(runner, integration.integration_id)
    assert len(leads) == 1, [lead["source_entity"] for lead in leads]
    expected_entity = {"type": "lead", "id": "7101"} if order == "lead_first" else {"type": "deal", "id": "9101"}
    assert leads[0]["source_entity"] == expected_entity
    # The same lead id whichever entity's event emitted it.
    assert leads[0]["lead_id"] == leads_of_key(integration_id=integration.integration_id, member=member, lead=7_101)


def leads_of_key(integration_id: str, member: str, lead: int) -> str:
    from leadbridge.contract.lead import lead_id_for

    return lead_id_for(f"bitrix24:{member}:lead:{lead}")


CLAIM = "SET ledger_state = :busy"  # the ledger's claim, alone or in a transaction


def test_a_lead_and_its_deal_in_one_batch_are_one_conversation_claimed_in_one_write(runner: LocalRunner) -> None:
    """The deal's event, read in the batch, names the lead it came from and the open-lines session: all three keys
    are claimed in one write; the lead's event in the same batch finds the conversation emitted."""
    integration, secret, member, token = new_bitrix_integration(runner)
    domain = integration.crm_domain
    runner.bitrix24.add_open_lines_lead(domain, 7_301)
    convert(runner, domain, 7_301, 9_301)
    url = f"/hooks/bitrix24/{integration.integration_id}/{secret}"
    app = runner.stack.moto.app
    app.watched[CLAIM] = 0
    try:
        for event, entity_id in (("ONCRMDEALADD", 9_301), ("ONCRMLEADADD", 7_301)):
            fields = bitrix_fields(integration, member, token, entity_id) | {"event": event}
            body = sample_body("bitrix_hook", "lead_telegram_without_session.json", **fields)
            assert runner.post(url, body).status_code == 200
        runner.drain(timeout=60)
        claims = app.watched[CLAIM]
    finally:
        app.watched.pop(CLAIM, None)
    leads = leads_of(runner, integration.integration_id)
    assert [lead["source_entity"] for lead in leads] == [{"type": "deal", "id": "9301"}]
    assert leads[0]["lead_id"] == leads_of_key(integration_id=integration.integration_id, member=member, lead=7_301)
    # One write for the deal's three keys, one for the lead's event (refused: emitted); one at a time would be four.
    assert claims == 2


def test_a_deal_an_open_line_created_directly_is_its_own_conversation(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    domain = integration.crm_domain
    runner.bitrix24.add_open_lines_lead(domain, 7_201)
    convert(runner, domain, 7_201, 9_201)
    runner.bitrix24.portals[domain].deals[9_201].pop("LEAD_ID")  # no lead behind it
    fields = bitrix_fields(integration, member, token, 9_201) | {"event": "ONCRMDEALADD"}
    body = sample_body("bitrix_hook", "lead_telegram_without_session.json", **fields)
    assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 200
    runner.drain(timeout=60)
    assert [lead["source_entity"] for lead in leads_of(runner, integration.integration_id)] == [
        {"type": "deal", "id": "9201"}
    ]


def test_a_returning_client_in_an_open_amocrm_talk_is_a_new_request(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub, 1201, lead_id=12_010, contact_id=120_100, origin="telegram", created_at=1773000000, lead={}, contact={}
    )
    amo = runner.amocrm.accounts[sub]
    amo.leads[12_020] = {"id": 12_020, "created_at": 1773100000, "_embedded": {"contacts": [{"id": 120_100}]}}
    amo.leads[11_990] = {"id": 11_990, "created_at": 1772000000}  # an older lead the talk gets linked to
    amo.contacts[120_100] = {"id": 120_100, "name": "Ann"}

    def deliver(action: str, lead_id: int, updated_at: int) -> None:
        sample = "talk_add.json" if action == "add" else "talk_update_same_talk.json"
        fields = talk_fields(action, 1201, lead_id, 120_100, sub, account, updated_at=updated_at)
        body = sample_body("amo_hook", sample, **fields)
        assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200

    deliver("add", 12_010, 1773000000)
    deliver("update", 12_010, 1773000100)  # read / closed: the same request
    runner.drain(timeout=60)
    deliver("update", 12_020, 1773100100)  # the client wrote again; amoCRM opened a new lead on the talk
    deliver("update", 12_020, 1773100200)
    deliver("update", 11_990, 1773100300)  # the talk linked to an older, existing lead: no new inquiry
    runner.drain(timeout=60)
    leads = leads_of(runner, integration.integration_id)
    # The first conversation started with the talk (the webhook's created_at); the second with its new lead.
    assert sorted(lead["created_at"] for lead in leads) == ["2024-09-17T13:54:58Z", "2026-03-09T23:46:40Z"]
    assert {lead["source_entity"]["id"] for lead in leads} == {"1201"}
    assert len({lead["lead_id"] for lead in leads}) == 2


def test_the_transcript_is_ordered_by_instant_not_by_the_text_of_a_local_time(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    runner.bitrix24.add_open_lines_lead(integration.crm_domain, 7_301)
    portal = runner.bitrix24.portals[integration.crm_domain]
    portal.histories[10_000 + 7_301]["message"] = {
        # 01:30 at +03:00 is 22:30Z the day before: the earliest, though its text sorts last.
        "3": {"id": "3", "senderid": "88", "date": "2026-03-29T01:30:00+03:00", "text": "first"},
        "1": {"id": "1", "senderid": "88", "date": "2026-03-28T23:10:00+00:00", "text": "second"},
        "2": {"id": "2", "senderid": "88", "date": "2026-03-29T00:20:00+01:00", "text": "third"},
    }
    body = sample_body(
        "bitrix_hook", "lead_telegram_without_session.json", **bitrix_fields(integration, member, token, 7_301)
    )
    assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 200
    runner.drain(timeout=60)
    (lead,) = leads_of(runner, integration.integration_id)
    assert [m["text"] for m in lead["chat"]["messages"]] == ["first", "second", "third"]


def test_unknown_channels_are_passed_raw_and_shown_in_the_status(runner: LocalRunner) -> None:
    integration, secret, account = new_amo_integration(runner, amo_note_enabled=False)
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub,
        1301,
        lead_id=13_010,
        contact_id=130_100,
        origin="com.newvendor.max",
        created_at=1773000000,
        lead={},
        contact={},
    )
    fields = talk_fields("add", 1301, 13_010, 130_100, sub, account) | {"talk[add][0][origin]": "com.newvendor.max"}
    body = sample_body("amo_hook", "talk_add.json", **fields)
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.drain(timeout=60)
    (lead,) = leads_of(runner, integration.integration_id)
    assert lead["channel"] == {"kind": "messenger", "messenger": "com.newvendor.max", "origin": "com.newvendor.max"}
    assert lead["attribution"]["kind"] == "integration_default"
    assert service(runner).status(integration.integration_id).unknown_channels == ["com.newvendor.max"]

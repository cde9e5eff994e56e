"""Bitrix24 as a real portal answers (issue 33), over the local stack: hooks posted, the worker draining, leads and
DLQs read back. The fake resolves ``batch`` references and casts ids as the platform does, bills each command's
execution time, refuses per command inside a 200, redirects a renamed portal's old address and refuses a whole
portal the way the docs list."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.ledger import DynamoLedger
from leadbridge.contract.integration import Integration
from leadbridge_local.runner import LocalRunner
from tests.integration.helpers import bitrix_fields, new_bitrix_integration, sample_body


def ledger(runner: LocalRunner) -> DynamoLedger:
    return DynamoLedger(runner.stack.ref("LeadLedgerTable"), 90)


def statuses(runner: LocalRunner) -> DynamoIntegrations:
    return DynamoIntegrations(runner.stack.ref("IntegrationsTable"))


def post_lead(
    runner: LocalRunner, integration: Integration, secret: str, member: str, token: str, lead_id: int, **fields: str
) -> None:
    body = sample_body(
        "bitrix_hook",
        "lead_telegram_without_session.json",
        **(bitrix_fields(integration, member, token, lead_id) | fields),
    )
    answer = runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body)
    assert answer.status_code == 200, answer.text


def leads_of(runner: LocalRunner, integration: Integration) -> list[dict[str, Any]]:
    return [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]


def dead_letters_of(runner: LocalRunner, integration: Integration) -> list[dict[str, Any]]:
    return [m for m in runner.take_messages("InboxDeadLetterQueue") if integration.integration_id in m["Body"]]


@contextmanager
def when(condition: Callable[[], bool], action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` once ``condition`` holds (checked on another thread while the block runs): a refusal that
    passes after the worker met it, whatever the machine's speed."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if condition():
                action()
                return
            stop.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(5)


def test_a_lead_without_a_contact_never_gets_contact_1(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    portal = runner.bitrix24.portals[integration.crm_domain]
    portal.contacts[1] = {
        "ID": "1",
        "NAME": "Администратор",
        "LAST_NAME": "Портала",
        "PHONE": [{"VALUE": "+79990000001", "TYPE_ID": "PHONE"}],
        "EMAIL": [{"VALUE": "admin@portal.example", "TYPE_ID": "EMAIL"}],
    }
    runner.bitrix24.add_open_lines_lead(integration.crm_domain, 6101)
    assert portal.leads[6101].get("CONTACT_ID") is None
    before = runner.bitrix24.counts["method:crm.contact.get"]
    post_lead(runner, integration, secret, member, token, 6101)
    runner.drain()
    assert runner.bitrix24.counts["method:crm.contact.get"] > before  # the chained read did go out, and read #1
    [lead] = leads_of(runner, integration)
    assert lead["contact"] == {"name": "Клиент", "phones": ["+79261112233"], "emails": []}


def test_a_method_out_of_time_inside_a_batch_waits_and_comes_out(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    portal = runner.bitrix24.portals[integration.crm_domain]
    runner.bitrix24.add_open_lines_lead(integration.crm_domain, 6201)
    now = runner.bitrix24.clock.now()
    portal.operating["crm.lead.get"] = [(now - 30, 900.0)]  # over the 480 s budget: refused inside the batch
    refused = runner.bitrix24.counts["refused:OPERATION_TIME_LIMIT"]
    post_lead(runner, integration, secret, member, token, 6201)
    with when(
        lambda: runner.bitrix24.counts["refused:OPERATION_TIME_LIMIT"] > refused,
        lambda: portal.operating.pop("crm.lead.get", None),  # the oldest basket reset
    ):
        runner.drain(timeout=120)
    assert dead_letters_of(runner, integration) == []
    [lead] = leads_of(runner, integration)
    assert lead["source_entity"]["id"] == "6201"
    entry = ledger(runner).get(f"bitrix24:{member}:lead:6201")
    assert entry is not None
    assert entry.state == "emitted"
    assert entry.attempts >= 2


def test_a_lead_the_token_may_not_read_waits_for_an_admin(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    portal = runner.bitrix24.portals[integration.crm_domain]
    runner.bitrix24.add_open_lines_lead(integration.crm_domain, 6301)
    portal.denied.add(6301)
    post_lead(runner, integration, secret, member, token, 6301)
    runner.drain()
    assert dead_letters_of(runner, integration) == []
    status = statuses(runner).status(integration.integration_id)
    assert status["connection_state"] == "insufficient_rights"
    assert "crm.lead.get" in status["last_error"]
    entry = ledger(runner).get(f"bitrix24:{member}:lead:6301")
    assert entry is not None
    assert entry.state == "parked"


def test_a_refused_history_waits_and_the_lead_keeps_its_chat(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    portal = runner.bitrix24.portals[integration.crm_domain]
    runner.bitrix24.add_open_lines_lead(integration.crm_domain, 6401)
    portal.scopes.discard("imopenlines")  # the app was installed without imopenlines
    refused = runner.bitrix24.counts["refused:insufficient_scope"]
    post_lead(runner, integration, secret, member, token, 6401)
    with when(
        lambda: runner.bitrix24.counts["refused:insufficient_scope"] > refused,
        lambda: portal.scopes.add("imopenlines"),  # the admin re-installs with the scope
    ):
        runner.drain(timeout=120)
    assert dead_letters_of(runner, integration) == []
    [lead] = leads_of(runner, integration)
    assert lead["chat"]["messages"][0]["text"] == "Привет"


def test_a_portal_refusing_everything_is_blocked_until_the_probe_finds_it_answering(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    portal = runner.bitrix24.portals[integration.crm_domain]
    runner.bitrix24.add_open_lines_lead(integration.crm_domain, 6501)
    portal.refusal = (403, "ACCESS_DENIED", "REST API is available only on commercial plans")
    post_lead(runner, integration, secret, member, token, 6501)
    runner.drain()
    assert dead_letters_of(runner, integration) == []
    assert statuses(runner).status(integration.integration_id)["connection_state"] == "blocked"
    entry = ledger(runner).get(f"bitrix24:{member}:lead:6501")
    assert entry is not None
    assert entry.state == "parked"

    runner.run_schedule("recovery")  # still refused: stays blocked
    assert statuses(runner).status(integration.integration_id)["connection_state"] == "blocked"
    portal.refusal = None  # the plan was paid
    runner.run_schedule("recovery")
    assert statuses(runner).status(integration.integration_id)["connection_state"] == "connected"
    runner.drain()
    assert [lead["source_entity"]["id"] for lead in leads_of(runner, integration)] == ["6501"]


def test_a_renamed_portal_keeps_its_leads(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    runner.bitrix24.add_open_lines_lead(integration.crm_domain, 6601)
    new_domain = "renamed-" + integration.crm_domain
    runner.bitrix24.rename_portal(integration.crm_domain, new_domain)
    post_lead(runner, integration, secret, member, token, 6601, **{"auth[domain]": new_domain})
    runner.drain()
    assert dead_letters_of(runner, integration) == []
    [lead] = leads_of(runner, integration)
    assert lead["chat"]["messages"][0]["text"] == "Привет"
    assert runner.bitrix24.counts["redirects"] >= 1
    stored = statuses(runner).get(integration.integration_id)
    assert stored is not None
    assert stored.crm_domain == new_domain
    assert statuses(runner).status(integration.integration_id)["portal_moved"] == {
        "from": integration.crm_domain,
        "to": new_domain,
    }


def test_a_renamed_portals_hook_still_needs_its_member_and_token(runner: LocalRunner) -> None:
    integration, secret, _, token = new_bitrix_integration(runner)
    body = sample_body(
        "bitrix_hook",
        "lead_telegram_without_session.json",
        **(bitrix_fields(integration, "f" * 32, token, 6602) | {"auth[domain]": "elsewhere.bitrix24.ru"}),
    )
    assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 403


def test_a_deal_bound_to_the_session_it_does_not_own_has_its_chat(runner: LocalRunner) -> None:
    integration, secret, member, token = new_bitrix_integration(runner)
    portal = runner.bitrix24.portals[integration.crm_domain]
    portal.deals[6701] = {"ID": "6701", "TITLE": "Сделка", "DATE_CREATE": "2026-03-11T12:21:00+03:00"}
    session = 16_701
    portal.histories[session] = {
        "message": {
            "1": {"id": "1", "senderid": "88", "date": "2026-03-11T12:20:01+03:00", "text": "Из чата", "params": {}}
        },
        "users": {"88": {"id": "88", "connector": True}},
    }
    # Open Lines made the activity for a client (owner: a contact) and bound it to the deal as well.
    runner.bitrix24.add_activity(
        integration.crm_domain, "lead", 999_999, session, "telegrambot", also_bound_to=(("deal", 6701),)
    )
    body = sample_body(
        "bitrix_hook",
        "lead_telegram_without_session.json",
        **(bitrix_fields(integration, member, token, 6701) | {"event": "ONCRMDEALADD"}),
    )
    assert runner.post(f"/hooks/bitrix24/{integration.integration_id}/{secret}", body).status_code == 200
    runner.drain()
    [lead] = leads_of(runner, integration)
    assert lead["source_entity"] == {"type": "deal", "id": "6701"}
    assert lead["chat"]["messages"][0]["text"] == "Из чата"


def test_an_unpaid_application_is_blocked_not_dead(runner: LocalRunner) -> None:
    """``PAYMENT_REQUIRED`` on refresh: the grant lives, and works again once the subscription is paid."""
    integration, secret, member, token = new_bitrix_integration(runner)
    portal = runner.bitrix24.portals[integration.crm_domain]
    runner.bitrix24.add_open_lines_lead(integration.crm_domain, 6801)
    portal.unpaid = True
    runner.bitrix24.expire_access_tokens()
    post_lead(runner, integration, secret, member, token, 6801)
    runner.drain()
    assert dead_letters_of(runner, integration) == []
    status = statuses(runner).status(integration.integration_id)
    assert status["connection_state"] == "blocked"
    assert "PAYMENT_REQUIRED" in status["last_error"]
    portal.unpaid = False
    runner.run_schedule("recovery")
    assert statuses(runner).status(integration.integration_id)["connection_state"] == "connected"
    runner.drain()
    assert [lead["source_entity"]["id"] for lead in leads_of(runner, integration)] == ["6801"]

"""Events that wait for a person are parked out of the inbox and come back, once each, on reconnect."""

from __future__ import annotations

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.ledger import DynamoLedger
from leadbridge.aws.store.parked import DynamoParkedEvents
from leadbridge_local.runner import LocalRunner
from leadbridge_local.seed import connect_through_oauth
from tests.integration.helpers import add_amo_talks, new_amo_integration, sample_body, talk_fields

FIRST = range(800, 804)
LATER = range(804, 807)
ONE_DAY = 86400


def test_a_day_waiting_for_reauthorization_loses_nothing_and_doubles_nothing(runner: LocalRunner) -> None:
    integration, secret, account_id = new_amo_integration(runner)
    sub = integration.account_name
    table = runner.stack.ref("IntegrationsTable")
    statuses = DynamoIntegrations(table)
    parked = DynamoParkedEvents(table)
    add_amo_talks(runner, integration, (*FIRST, *LATER), created_at=1773223766)

    def deliver(talks: range, action: str = "add") -> None:
        for talk in talks:
            fields = talk_fields(action, talk, talk * 10, talk * 100, sub, account_id, updated_at=1773223766 + talk)
            sample = "talk_add.json" if action == "add" else "talk_update_same_talk.json"
            body = sample_body("amo_hook", sample, **fields)
            assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200

    runner.amocrm.revoke_grants(sub)  # an admin revoked access: the next refresh is refused
    runner.amocrm.expire_access_tokens()
    deliver(FIRST)
    runner.drain(timeout=120)
    assert statuses.status(integration.integration_id)["connection_state"] == "reauth_required"
    assert parked.count(integration.integration_id) == len(FIRST)

    runner.clock.advance(ONE_DAY)  # a day passes; the TTL sweeper runs on that clock
    try:
        runner.expire_ttl()
        calls_before = runner.amocrm.counts["api_requests"] + runner.amocrm.counts["token_requests"]
        deliver(LATER)
        deliver(FIRST, action="update")  # amoCRM's update_talk storm for the same talks
        runner.drain(timeout=120)
        # Waiting costs the CRM nothing: the worker knows the integration waits and parks without calling.
        assert runner.amocrm.counts["api_requests"] + runner.amocrm.counts["token_requests"] == calls_before
        runner.expire_ttl()
    finally:
        runner.clock.advance(-ONE_DAY)
    assert parked.count(integration.integration_id) == len(FIRST) + len(LATER)
    assert runner.queue_depth("InboxQueue") == 0
    assert [m for m in runner.take_messages("InboxDeadLetterQueue") if integration.integration_id in m["Body"]] == []
    ledger = DynamoLedger(runner.stack.ref("LeadLedgerTable"), 90)
    for talk in (*FIRST, *LATER):
        entry = ledger.get(f"amocrm:{account_id}:talk:{talk}")
        assert entry is not None
        assert entry.state == "parked"

    assert connect_through_oauth(runner, integration, str(account_id)) == 200  # the admin re-authorizes
    runner.drain(timeout=120)
    emitted = sorted(
        int(lead["source_entity"]["id"])
        for lead in runner.take_leads()
        if lead["integration_id"] == integration.integration_id
    )
    assert emitted == [*FIRST, *LATER]  # every conversation, once
    assert parked.count(integration.integration_id) == 0
    assert statuses.status(integration.integration_id)["connection_state"] == "connected"
    assert [m for m in runner.take_messages("InboxDeadLetterQueue") if integration.integration_id in m["Body"]] == []


def test_an_integration_whose_tokens_vanished_shows_reauth_required_and_parks(runner: LocalRunner) -> None:
    integration, secret, account_id = new_amo_integration(runner)
    table = runner.stack.ref("IntegrationsTable")
    runner.stack.client("dynamodb").delete_item(
        TableName=table, Key={"pk": {"S": f"TOKEN#{integration.integration_id}"}, "sk": {"S": "TOKEN"}}
    )
    sub = integration.account_name
    runner.amocrm.add_talk(
        sub, 830, lead_id=8300, contact_id=83000, origin="vk", created_at=1773223766, lead={}, contact={"name": "Bo"}
    )
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 830, 8300, 83000, sub, account_id))
    assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200
    runner.drain(timeout=60)
    # Its tokens are gone although it was connected: that needs a person, and says so.
    assert DynamoIntegrations(table).status(integration.integration_id)["connection_state"] == "reauth_required"
    assert DynamoParkedEvents(table).count(integration.integration_id) == 1
    assert connect_through_oauth(runner, integration, str(account_id)) == 200
    runner.drain(timeout=60)
    emitted = [lead for lead in runner.take_leads() if lead["integration_id"] == integration.integration_id]
    assert [lead["source_entity"]["id"] for lead in emitted] == ["830"]


def test_resumes_hammered_at_once_send_each_parked_event_once(runner: LocalRunner) -> None:
    """Five resumes at once: while the grant is dead each is a no-op (nothing can get through), and on a blocked
    account that answers again one of them sends each parked event back, once; the others wait their turn (409) or
    find nothing left."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    dead, dead_secret, dead_account = new_amo_integration(runner)
    add_amo_talks(runner, dead, range(830, 833), created_at=1773223766)
    runner.amocrm.revoke_grants(dead.account_name)
    runner.amocrm.expire_access_tokens()
    for talk in range(830, 833):
        fields = talk_fields("add", talk, talk * 10, talk * 100, dead.account_name, dead_account)
        body = sample_body("amo_hook", "talk_add.json", **fields)
        assert runner.post(f"/hooks/amocrm/{dead.integration_id}/{dead_secret}/", body).status_code == 200
    runner.drain(timeout=120)
    parked = DynamoParkedEvents(runner.stack.ref("IntegrationsTable"))
    assert parked.count(dead.integration_id) == 3

    def resume_all(integration_id: str) -> list[httpx.Response]:
        url = f"{runner.base_url}/integrations/{integration_id}/resume"
        with ThreadPoolExecutor(5) as pool:
            return list(pool.map(lambda _: httpx.post(url, timeout=60), range(5)))

    depth = runner.queue_depth("InboxQueue")
    answers = resume_all(dead.integration_id)
    assert [a.json() for a in answers] == [{"resumed": 0, "waiting_for": "reauth_required"}] * 5
    assert runner.queue_depth("InboxQueue") == depth
    assert parked.count(dead.integration_id) == 3

    blocked, secret, account = new_amo_integration(runner)
    add_amo_talks(runner, blocked, range(840, 844), created_at=1773223766)
    runner.amocrm.accounts[blocked.account_name].blocked = True
    for talk in range(840, 844):
        fields = talk_fields("add", talk, talk * 10, talk * 100, blocked.account_name, account)
        body = sample_body("amo_hook", "talk_add.json", **fields)
        assert runner.post(f"/hooks/amocrm/{blocked.integration_id}/{secret}/", body).status_code == 200
    runner.drain(timeout=120)
    assert parked.count(blocked.integration_id) == 4
    runner.amocrm.accounts[blocked.account_name].blocked = False
    answers = resume_all(blocked.integration_id)
    assert {a.status_code for a in answers} <= {200, 409}
    assert sum(a.json()["resumed"] for a in answers if a.status_code == 200) == 4  # each parked event once
    runner.drain(timeout=120)
    emitted = [lead for lead in runner.take_leads() if lead["integration_id"] == blocked.integration_id]
    assert sorted(int(lead["source_entity"]["id"]) for lead in emitted) == list(range(840, 844))

"""``make api``'s walkthrough (README, "Try the set-up by hand"), step by step against the same app on the local
stack: settings, the hook URL, the fake CRM's consent page completing the connect, a webhook becoming a lead, the
checklist, a resume and a backfill's progress."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import uvicorn

from leadbridge_local.api_server import local_app
from leadbridge_local.runner import LocalRunner
from tests.conftest import load_event
from tests.integration.helpers import sample_body, talk_fields


@contextmanager
def served(runner: LocalRunner) -> Iterator[httpx.Client]:
    """``make api``'s app under uvicorn on a free loopback port, as ``make api`` serves it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(local_app(runner), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # a bound on a stall, never on the machine's speed in the verdict
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_readme_walkthrough(runner: LocalRunner) -> None:
    with served(runner) as api:
        walk(runner, api)


def walk(runner: LocalRunner, api: httpx.Client) -> None:
    settings = json.loads(load_event("integrations_api", "put_amocrm_settings.json")["body"])
    settings["crm_domain"] = "walkthrough.amocrm.ru"
    integration_id = "walkthrough"

    # 1. settings, 2. the hook URL
    assert api.put(f"/integrations/{integration_id}", json=settings).status_code in {200, 201}
    webhook_url = api.post(f"/integrations/{integration_id}/webhook-secret").json()["webhook_url"]
    assert webhook_url.startswith(runner.base_url + f"/hooks/amocrm/{integration_id}/")
    before = {s["step"]: s["state"] for s in api.get(f"/integrations/{integration_id}/status").json()["setup"]}
    assert before["oauth_connected"] == "missing"

    # 3. connect: the fake CRM's consent page sends the browser on to the stack's callback
    consent = api.get(f"/local/authorize/{integration_id}", follow_redirects=False)
    assert consent.status_code == 302
    page = httpx.get(consent.headers["location"], timeout=30)
    assert page.status_code == 200
    assert "amoCRM подключена" in page.text
    status = api.get(f"/integrations/{integration_id}/status").json()
    assert status["connection"] == "connected"

    # the pickers: the session field, the channels and pipelines, from the account; a field it lacks is refused
    fields = api.get(f"/integrations/{integration_id}/crm/fields").json()["items"]
    assert {"id": "778899", "holds_session": True}.items() <= next(f for f in fields if f["id"] == "778899").items()
    channels = api.get(f"/integrations/{integration_id}/crm/channels").json()["items"]
    assert "telegram" in {c["key"] for c in channels}
    assert api.get(f"/integrations/{integration_id}/crm/pipelines").json()["items"][0]["stages"]
    wrong = {**settings, "session_field": {"field_id": 123, "entity": "lead"}}
    refused = api.put(f"/integrations/{integration_id}", json=wrong)
    assert (refused.status_code, refused.json()["code"]) == (422, "session_field_missing")
    assert api.put(f"/integrations/{integration_id}", json=settings).status_code == 200
    assert api.get(f"/integrations/{integration_id}/status").json()["settings_check"]["state"] == "ok"

    # 4. a webhook as amoCRM posts it: a lead (the worker drains, as make api's background does)
    account = int(api.get(f"/integrations/{integration_id}").json()["account_id"])  # what the connect found
    runner.amocrm.add_talk(
        "walkthrough", 9_901, lead_id=99_010, contact_id=990_100, origin="telegram", created_at=int(time.time()) - 60,
        lead={}, contact={"name": "Ann"},
    )  # fmt: skip
    body = sample_body(
        "amo_hook", "talk_add.json", **talk_fields("add", 9_901, 99_010, 990_100, "walkthrough", account)
    )
    assert httpx.post(webhook_url, content=body, timeout=30).status_code == 200
    runner.drain(timeout=60)
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration_id]
    assert [lead["source_entity"]["id"] for lead in leads] == ["9901"]
    steps = {s["step"]: s["state"] for s in api.get(f"/integrations/{integration_id}/status").json()["setup"]}
    assert (steps["webhook"], steps["events"], steps["first_lead"]) == ("ok", "ok", "ok")

    # 5. resume (nothing parked) and a backfill's progress
    assert api.post(f"/integrations/{integration_id}/resume").json()["resumed"] == 0
    now = int(time.time())
    period = {
        "from": datetime.fromtimestamp(now - 7 * 86_400, UTC).isoformat(),
        "to": datetime.fromtimestamp(now, UTC).isoformat(),
    }
    assert api.post(f"/integrations/{integration_id}/backfill", json=period).status_code == 202
    runner.run_schedule("backfill")
    progress = api.get(f"/integrations/{integration_id}/backfill").json()
    assert progress["already_known"] + progress["done"] >= 1

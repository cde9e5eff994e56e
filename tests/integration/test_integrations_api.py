"""The integrations API as the cabinet uses it: through its ASGI app, and through Mangum behind the local routes."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from leadbridge.aws.config import ApiConfig
from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.composition import integrations_service
from leadbridge.flows.api.app import create_app
from leadbridge_local.runner import LocalRunner
from leadbridge_local.schema import OPENAPI_PATH, render_openapi
from tests.conftest import load_event
from tests.integration.helpers import sample_body, talk_fields


def settings_from_event(name: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load_event("integrations_api", name)["body"])
    return {**body, **changes}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(runner: LocalRunner) -> TestClient:
    config = ApiConfig(
        integrations_table=runner.stack.ref("IntegrationsTable"),
        state_secret_arn=runner.stack.ref("StateSigningSecret"),
        inbox_queue_url=runner.stack.ref("InboxQueue"),
        public_base_url=runner.base_url,
    )
    return TestClient(create_app(lambda: integrations_service(config)))


def test_openapi_document_is_committed_and_current() -> None:
    assert OPENAPI_PATH.read_text(encoding="utf-8") == render_openapi(), "run `make schema` and commit the result"


def test_create_read_update_list_and_secrets_never_returned(client: TestClient) -> None:
    integration_id = unique("amo")
    settings = settings_from_event("put_amocrm_settings.json", crm_domain=f"{integration_id}.amocrm.ru")
    created = client.put(f"/integrations/{integration_id}", json=settings)
    assert created.status_code == 201
    assert settings["client_secret"] not in created.text
    assert created.json()["has_client_secret"] is True
    assert created.json()["session_field"] == {"field_id": 778899, "entity": "lead"}
    update = {k: v for k, v in settings.items() if k != "client_secret"} | {"name": "renamed"}
    updated = client.put(f"/integrations/{integration_id}", json=update)
    assert (updated.status_code, updated.json()["name"], updated.json()["has_client_secret"]) == (200, "renamed", True)
    assert client.get(f"/integrations/{integration_id}").json()["name"] == "renamed"
    assert integration_id in every_integration(client)
    assert client.get("/integrations/nope-404").status_code == 404


def every_integration(client: TestClient, limit: int = 100) -> list[str]:
    """Every id, page by page as the cabinet reads them (each page at most ``limit``)."""
    found: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        page = client.get("/integrations", params=params)
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) <= limit
        found += [item["integration_id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


def test_the_list_comes_in_pages_with_a_cursor(client: TestClient) -> None:
    mine = sorted(unique("page") for _ in range(7))
    for integration_id in mine:
        settings = settings_from_event("put_amocrm_settings.json", crm_domain=f"{integration_id}.amocrm.ru")
        assert client.put(f"/integrations/{integration_id}", json=settings).status_code == 201
    listed = every_integration(client, limit=3)
    assert len(listed) == len(set(listed))  # no page repeats another's item
    assert set(mine) <= set(listed)
    # A Scan may stop at any item (a status, a token): the cursor it gives is good for the next page.
    from leadbridge.flows.api.service import encode_cursor

    stopped_at_a_token = encode_cursor({"pk": f"TOKEN#{mine[0]}", "sk": "TOKEN"})
    assert client.get("/integrations", params={"cursor": stopped_at_a_token, "limit": "3"}).status_code == 200
    assert client.get("/integrations", params={"limit": "101"}).status_code == 422
    refused = client.get("/integrations", params={"cursor": "bm90LW91cnM"})
    assert (refused.status_code, refused.json()["code"], refused.json()["field"]) == (422, "invalid_cursor", "cursor")


@pytest.mark.parametrize(
    ("event", "changes", "path"),
    [
        ("put_amocrm_settings.json", {"crm_domain": "evil.example.com"}, ["body", "amocrm", "crm_domain"]),
        (
            "put_amocrm_settings.json",
            {"session_field": {"field_id": 0}},
            ["body", "amocrm", "session_field", "field_id"],
        ),
        ("put_amocrm_settings.json", {"traffic_type": "source"}, ["body", "amocrm"]),
        ("put_bitrix24_settings.json", {"crm_domain": "not a domain"}, ["body", "bitrix24", "crm_domain"]),
        ("put_bitrix24_settings.json", {"default_target": {"source_id": 5}}, ["body", "bitrix24"]),
        ("put_bitrix24_settings.json", {"crm": "salesforce"}, ["body"]),
        ("put_bitrix24_settings.json", {"unknown": 1}, ["body", "bitrix24", "unknown"]),
    ],
)
def test_invalid_settings_get_422_with_the_field_path(
    client: TestClient, event: str, changes: dict[str, Any], path: list[str]
) -> None:
    response = client.put(f"/integrations/{unique('bad')}", json=settings_from_event(event, **changes))
    assert response.status_code == 422
    locations = [error["loc"] for error in response.json()["detail"]]
    assert any(loc[: len(path)] == path for loc in locations), locations


def test_a_crm_cannot_change_on_update(client: TestClient) -> None:
    integration_id = unique("amo")
    assert (
        client.put(f"/integrations/{integration_id}", json=settings_from_event("put_amocrm_settings.json")).status_code
        == 201
    )
    assert (
        client.put(
            f"/integrations/{integration_id}", json=settings_from_event("put_bitrix24_settings.json")
        ).status_code
        == 409
    )


def test_delete_deactivates_and_removes_tokens(runner: LocalRunner, client: TestClient) -> None:
    from leadbridge_local.seed import connect_amocrm

    integration_id = unique("amo")
    client.put(
        f"/integrations/{integration_id}",
        json=settings_from_event("put_amocrm_settings.json", crm_domain=f"{integration_id}.amocrm.ru"),
    )
    saved = DynamoIntegrations(runner.stack.ref("IntegrationsTable")).get(integration_id)
    assert saved is not None
    connect_amocrm(runner, saved, 5551234)
    assert client.get(f"/integrations/{integration_id}/status").json()["connection"] == "connected"
    assert client.delete(f"/integrations/{integration_id}").status_code == 204
    assert client.get(f"/integrations/{integration_id}").json()["active"] is False
    status = client.get(f"/integrations/{integration_id}/status").json()
    assert (status["connection"], status["token_expires_at"]) == ("disconnected", None)


def test_through_mangum_with_api_gateway_events(runner: LocalRunner) -> None:
    event = load_event("integrations_api", "put_bitrix24_settings.json")
    response = runner.invoke("IntegrationsApiFunction", event)
    assert response["statusCode"] in {200, 201}
    assert "replace-with-the-application-key" not in response["body"]
    assert json.loads(response["body"])["has_application_token"] is True
    script = runner.invoke("IntegrationsApiFunction", load_event("integrations_api", "get_site_script.json"))
    assert script["statusCode"] == 200
    assert script["headers"]["content-type"].startswith("text/javascript")
    assert "setCustomData" in script["body"]


def test_schemathesis_finds_no_server_error(runner: LocalRunner) -> None:
    import schemathesis
    from hypothesis import HealthCheck, settings

    schema = schemathesis.openapi.from_path(str(OPENAPI_PATH))
    failures: list[str] = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def exercise(case: Any) -> None:
        response = case.call(base_url=runner.base_url)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

    for result in schema.get_all_operations():
        operation = result.ok()
        test = operation.as_strategy()
        from hypothesis import given

        given(case=test)(exercise)()
    assert failures == []


def test_end_to_end_setup_through_the_api(runner: LocalRunner) -> None:
    """Settings, webhook secret, authorize URL, connect against the fake amoCRM, a webhook, a lead, the status."""
    api = httpx.Client(base_url=runner.base_url + "/integrations", timeout=30)
    integration_id = unique("shop")
    domain = f"{integration_id}.amocrm.ru"
    settings = settings_from_event("put_amocrm_settings.json", crm_domain=domain)
    assert api.put(f"/{integration_id}", json=settings).status_code == 201

    webhook_url = api.post(f"/{integration_id}/webhook-secret").json()["webhook_url"]
    assert webhook_url.startswith(f"{runner.base_url}/hooks/amocrm/{integration_id}/")
    assert webhook_url.endswith("/")

    authorize = urlsplit(api.get(f"/{integration_id}/authorize-url").json()["url"])
    assert (authorize.netloc, parse_qs(authorize.query)["client_id"][0]) == ("www.amocrm.ru", settings["client_id"])
    account_id = 7770001 + int(uuid.uuid4().int % 1000)
    subdomain = integration_id
    runner.amocrm.add_account(subdomain, account_id)
    runner.amocrm.register_client(
        settings["client_id"], settings["client_secret"], runner.base_url + "/oauth2/callback"
    )
    callback = runner.get(
        "/oauth2/callback",
        {
            "code": runner.amocrm.issue_code(subdomain, settings["client_id"]),
            "state": parse_qs(authorize.query)["state"][0],
            "referer": domain,
            "platform": "1",
            "client_id": settings["client_id"],
        },
    )
    assert callback.status_code == 200
    status = api.get(f"/{integration_id}/status").json()
    assert (status["connection"], status["emitted"]) == ("connected", 0)

    runner.amocrm.add_talk(
        subdomain,
        900,
        lead_id=9000,
        contact_id=90000,
        origin="telegram",
        created_at=1773223766,
        lead={},
        contact={"name": "Ann"},
    )
    body = sample_body("amo_hook", "talk_add.json", **talk_fields("add", 900, 9000, 90000, subdomain, account_id))
    assert (
        httpx.post(webhook_url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code
        == 200
    )
    runner.drain()
    leads = [lead for lead in runner.take_leads() if lead["integration_id"] == integration_id]
    assert len(leads) == 1
    assert (leads[0]["attribution"]["kind"], leads[0]["attribution"]["campaign_id"]) == ("messenger_default", 1003)
    status = api.get(f"/{integration_id}/status").json()
    assert (status["accepted"], status["emitted"], status["failed"]) == (1, 1, 0)
    assert status["last_lead_at"] is not None


def test_the_openapi_document_declares_sigv4() -> None:
    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert document["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert document["security"] == [{"sigv4": []}]
    status = document["components"]["schemas"]["IntegrationStatus"]["properties"]
    assert {"setup", "refused", "ignored", "last_refusal", "last_webhook_at"} <= set(status)


def test_every_error_has_one_shape_and_never_the_input(runner: LocalRunner) -> None:
    secret = "very-secret-client-value-42"
    bad = {"crm": "amocrm", "crm_domain": "not a domain", "client_id": "c", "client_secret": secret}
    answers = [
        httpx.put(f"{runner.base_url}/integrations/shape-check", json=bad, timeout=30),
        httpx.get(f"{runner.base_url}/integrations/nobody-here", timeout=30),
        httpx.post(f"{runner.base_url}/integrations/nobody-here/resume", timeout=30),
    ]
    assert [a.status_code for a in answers] == [422, 404, 404]
    for answer in answers:
        body = answer.json()
        assert set(body) == {"code", "message", "field", "detail"}, body
        assert secret not in answer.text
    assert answers[0].json()["field"] == "crm_domain"
    assert answers[1].json()["code"] == "not_found"

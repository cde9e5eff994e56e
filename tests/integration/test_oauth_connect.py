"""Connecting an integration through the OAuth redirect, over HTTP to the local API and the fake CRMs."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from leadbridge.aws.secret_values import secret_string
from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.tokens import DynamoTokens
from leadbridge.contract.integration import Integration
from leadbridge.flows.connect.authorize import authorize_url
from leadbridge.flows.connect.disabled_hook import expected_signature
from leadbridge.flows.connect.state import StateSigner
from leadbridge_local.runner import LocalRunner
from leadbridge_local.seed import install_integration


def signer(runner: LocalRunner, now: float | None = None) -> StateSigner:
    key = lambda: secret_string(runner.stack.ref("StateSigningSecret"))  # noqa: E731
    return StateSigner(key) if now is None else StateSigner(key, clock=lambda: now)


def fresh(runner: LocalRunner, crm: str) -> Integration:
    suffix = uuid.uuid4().hex[:8]
    domain = f"c{suffix}.amocrm.ru" if crm == "amocrm" else f"c{suffix}.bitrix24.ru"
    integration = Integration(
        integration_id=f"oauth-{suffix}",
        crm=crm,  # type: ignore[arg-type]
        crm_domain=domain,
        name=f"Shop {suffix}",
        client_id=f"client-{suffix}",
        client_secret=f"secret-{uuid.uuid4().hex}",
    )
    install_integration(runner, integration)
    if crm == "amocrm":
        runner.amocrm.add_account(integration.account_name, int(uuid.uuid4().int % 10**8))
        runner.amocrm.register_client(
            integration.client_id or "", integration.client_secret or "", runner.base_url + "/oauth2/callback"
        )
    else:
        runner.bitrix24.add_portal(domain, uuid.uuid4().hex)
        runner.bitrix24.register_client(integration.client_id or "", integration.client_secret or "")
    return integration


def state_of(runner: LocalRunner, integration: Integration) -> str:
    url = authorize_url(integration, signer(runner))
    return parse_qs(urlsplit(url).query)["state"][0]


def amo_params(runner: LocalRunner, integration: Integration, **changes: str) -> dict[str, str]:
    params = {
        "code": runner.amocrm.issue_code(integration.account_name, integration.client_id or ""),
        "state": state_of(runner, integration),
        "referer": integration.crm_domain,
        "platform": "1",
        "client_id": integration.client_id or "",
    }
    return {**params, **changes}


def bitrix_params(runner: LocalRunner, integration: Integration, **changes: str) -> dict[str, str]:
    portal = runner.bitrix24.portals[integration.crm_domain]
    params = {
        "code": runner.bitrix24.issue_code(integration.crm_domain, integration.client_id or ""),
        "state": state_of(runner, integration),
        "domain": integration.crm_domain,
        "member_id": portal.member_id,
        "scope": "crm,imopenlines,im",
        "server_domain": "oauth.bitrix.info",
    }
    return {**params, **changes}


def assert_nothing_stored(runner: LocalRunner, integration: Integration) -> None:
    table = runner.stack.ref("IntegrationsTable")
    assert DynamoTokens(table).read(integration.integration_id) is None
    assert "connection_state" not in DynamoIntegrations(table).status(integration.integration_id)


def assert_page_clean(text: str, params: dict[str, str]) -> None:
    for name in ("code", "state"):
        assert params[name] not in text


def test_amocrm_connects(runner: LocalRunner) -> None:
    integration = fresh(runner, "amocrm")
    params = amo_params(runner, integration)
    response = runner.get("/oauth2/callback", params)
    assert response.status_code == 200
    assert "amoCRM подключена" in response.text
    assert_page_clean(response.text, params)
    table = runner.stack.ref("IntegrationsTable")
    stored = DynamoTokens(table).read(integration.integration_id)
    assert stored is not None
    assert stored.tokens.refresh_token is not None
    assert stored.tokens.access_token not in response.text
    saved = DynamoIntegrations(table).get(integration.integration_id)
    assert saved is not None
    assert saved.account_id == str(runner.amocrm.accounts[integration.account_name].account_id)
    assert DynamoIntegrations(table).status(integration.integration_id)["connection_state"] == "connected"
    replay = runner.get("/oauth2/callback", params)
    assert (replay.status_code, "уже была использована" in replay.text) == (400, True)


def test_bitrix24_connects_through_the_named_token_server(runner: LocalRunner) -> None:
    integration = fresh(runner, "bitrix24")
    params = bitrix_params(runner, integration)
    response = runner.get("/oauth2/callback", params)
    assert response.status_code == 200
    assert_page_clean(response.text, params)
    stored = DynamoTokens(runner.stack.ref("IntegrationsTable")).read(integration.integration_id)
    assert stored is not None
    assert stored.tokens.extra["client_endpoint"] == f"https://{integration.crm_domain}/rest/"
    saved = DynamoIntegrations(runner.stack.ref("IntegrationsTable")).get(integration.integration_id)
    assert saved is not None
    assert saved.account_id == params["member_id"]


@pytest.mark.parametrize(
    ("crm", "change", "status", "text"),
    [
        ("amocrm", "tampered_state", 400, "недействительна"),
        ("amocrm", "expired_state", 400, "устарела"),
        ("amocrm", "wrong_domain", 403, "другого аккаунта"),
        ("amocrm", "access_denied", 400, "Доступ не был предоставлен"),
        ("amocrm", "bad_code", 400, "не приняла код"),
        ("bitrix24", "wrong_domain", 403, "другого портала"),
        ("bitrix24", "expired_code", 400, "не приняла код"),
        ("bitrix24", "foreign_token_server", 400, "Неизвестный сервер"),
    ],
)
def test_failures_answer_a_clear_page_and_store_nothing(
    runner: LocalRunner, crm: str, change: str, status: int, text: str
) -> None:
    integration = fresh(runner, crm)
    params = amo_params(runner, integration) if crm == "amocrm" else bitrix_params(runner, integration)
    if change == "tampered_state":
        params["state"] = params["state"][:-3] + "AAA"
    elif change == "expired_state":
        params["state"] = parse_qs(urlsplit(authorize_url(integration, signer(runner, now=0.0))).query)["state"][0]
    elif change == "wrong_domain":
        params["referer" if crm == "amocrm" else "domain"] = (
            "someone-else.amocrm.ru" if crm == "amocrm" else "someone-else.bitrix24.ru"
        )
    elif change == "access_denied":
        params = {"error": "access_denied", "state": params["state"]}
    elif change == "bad_code":
        params["code"] = "def502" + "0" * 40
    elif change == "expired_code":
        runner.clock.advance(31)  # Bitrix24 codes live 30 seconds
    elif change == "foreign_token_server":
        params["server_domain"] = "evil.example.com"
    before = runner.bitrix24.counts["token_requests"]
    try:
        response = runner.get("/oauth2/callback", params)
    finally:
        runner.clock.offset = 0.0
    assert response.status_code == status
    assert text in response.text
    assert_nothing_stored(runner, integration)
    if change == "foreign_token_server":
        assert runner.bitrix24.counts["token_requests"] == before


def test_amocrm_disabled_hook(runner: LocalRunner) -> None:
    integration = fresh(runner, "amocrm")
    assert runner.get("/oauth2/callback", amo_params(runner, integration)).status_code == 200
    table = runner.stack.ref("IntegrationsTable")
    saved = DynamoIntegrations(table).get(integration.integration_id)
    assert saved is not None
    assert saved.account_id is not None
    path = f"/oauth2/amocrm/disabled/{integration.integration_id}"
    forged = {"account_id": saved.account_id, "client_uuid": integration.client_id or "", "signature": "0" * 64}
    assert runner.get(path, forged).status_code == 403
    stored = DynamoTokens(table).read(integration.integration_id)
    assert stored is not None
    assert stored.state == "active"
    signature = expected_signature(integration.client_id or "", saved.account_id, integration.client_secret or "")
    runner.amocrm.revoke_grants(integration.account_name)  # disabling the integration revokes its tokens
    assert runner.get(path, {**forged, "signature": signature}).status_code == 200
    stored = DynamoTokens(table).read(integration.integration_id)
    assert stored is not None
    assert stored.state == "disconnected"
    assert DynamoIntegrations(table).status(integration.integration_id)["connection_state"] == "disconnected"


def test_a_portal_domain_that_resolves_to_our_own_network_is_refused(
    runner: LocalRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker sends the portal's token to the portal's domain: names that resolve to loopback or link-local
    (the metadata address) are refused when saved, and again at connect if the name moved there since."""
    import json

    import httpx

    from leadbridge.http.public_host import RESOLVE_OVERRIDE_ENV

    answers = {
        "127.0.0.1.nip.io": ["127.0.0.1"],
        "169.254.169.254.nip.io": ["169.254.169.254"],
        "localtest.me": ["127.0.0.1", "::1"],
        "b24.intranet.example.ru": ["10.0.0.7"],
        "portal.example.ru": ["93.184.216.34"],
    }
    monkeypatch.setenv(RESOLVE_OVERRIDE_ENV, json.dumps(answers))
    from tests.conftest import load_event

    settings = json.loads(load_event("integrations_api", "put_bitrix24_settings.json")["body"])
    api = f"{runner.base_url}/integrations"
    for domain in ("127.0.0.1.nip.io", "169.254.169.254.nip.io", "localtest.me", "b24.intranet.example.ru"):
        answer = httpx.put(f"{api}/ssrf-{uuid.uuid4().hex[:6]}", json={**settings, "crm_domain": domain}, timeout=30)
        assert answer.status_code == 422, (domain, answer.text)
        assert "non-public" in answer.text
    assert httpx.put(
        f"{api}/ok-{uuid.uuid4().hex[:6]}", json={**settings, "crm_domain": "portal.example.ru"}
    ).is_success

    integration = fresh(runner, "bitrix24")  # saved while its name resolved nowhere (as any portal here)
    params = bitrix_params(runner, integration)
    monkeypatch.setenv(RESOLVE_OVERRIDE_ENV, json.dumps({integration.crm_domain: ["169.254.169.254"]}))
    response = runner.get("/oauth2/callback", params)
    assert response.status_code == 400
    assert "непубличный" in response.text
    assert DynamoTokens(runner.stack.ref("IntegrationsTable")).read(integration.integration_id) is None


def test_a_second_integration_on_one_amocrm_account_is_refused_until_the_first_is_deactivated(
    runner: LocalRunner,
) -> None:
    """Two active integrations on one account would share its talks' leads (whichever hook came first): the second
    connect is refused with a page that names the first; once the first is deactivated, the second connects."""
    from dataclasses import replace

    import httpx

    first = fresh(runner, "amocrm")
    assert runner.get("/oauth2/callback", amo_params(runner, first)).status_code == 200
    second = replace(first, integration_id=first.integration_id + "-b", client_id=(first.client_id or "") + "-b")
    install_integration(runner, second)
    runner.amocrm.register_client(
        second.client_id or "", second.client_secret or "", runner.base_url + "/oauth2/callback"
    )
    refused = runner.get("/oauth2/callback", amo_params(runner, second))
    assert refused.status_code == 409
    assert first.integration_id in refused.text
    assert_nothing_stored(runner, second)

    assert httpx.delete(f"{runner.base_url}/integrations/{first.integration_id}", timeout=30).status_code == 204
    accepted = runner.get("/oauth2/callback", amo_params(runner, second))
    assert accepted.status_code == 200, accepted.text

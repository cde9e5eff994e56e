"""Building test traffic from the samples in ``events/``: the same bodies, with fields swapped per test."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.contract.integration import Integration, SessionField, TrafficTarget
from leadbridge_local.runner import LocalRunner
from leadbridge_local.seed import connect_amocrm, install_integration
from tests.conftest import load_event


def sample_body(folder: str, name: str, **overrides: str) -> bytes:
    """The sample's raw body with some form fields replaced (keys in bracket notation)."""
    event = load_event(folder, name)
    raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
    pairs = parse_qsl(raw.decode(), keep_blank_values=True)
    replaced = [(k, overrides.get(k, v)) for k, v in pairs]
    return urlencode(replaced).encode()


def new_amo_integration(runner: LocalRunner, **changes: object) -> tuple[Integration, str, int]:
    """A fresh, connected amoCRM integration on its own fake account; returns it, its secret and account id."""
    suffix = uuid.uuid4().hex[:8]
    account_id = int(uuid.uuid4().int % 10**8) + 10**8
    integration = Integration(
        integration_id=f"amo-{suffix}",
        crm="amocrm",
        crm_domain=f"t{suffix}.amocrm.ru",
        client_id=f"client-{suffix}",
        client_secret=f"client-secret-{uuid.uuid4().hex}",
        session_field=SessionField(field_id=778899, entity="lead"),
        default_target=TrafficTarget(campaign_id=1001),
        messenger_targets={"telegram": TrafficTarget(campaign_id=1003)},
        employee_id=42,
    )
    integration = replace(integration, **changes)  # type: ignore[arg-type]
    secret = install_integration(runner, integration)
    connect_amocrm(runner, integration, account_id)
    return integration, secret, account_id


def talk_fields(
    action: str,
    talk_id: int,
    lead_id: int,
    contact_id: int,
    subdomain: str,
    account_id: int,
    updated_at: int | None = None,
) -> dict[str, str]:
    prefix = f"talk[{action}][0]"
    fields = {
        f"{prefix}[talk_id]": str(talk_id),
        f"{prefix}[entity_id]": str(lead_id),
        f"{prefix}[contact_id]": str(contact_id),
        "account[subdomain]": subdomain,
        "account[id]": str(account_id),
    }
    if updated_at is not None:
        fields[f"{prefix}[updated_at]"] = str(updated_at)
    return fields


def new_bitrix_integration(runner: LocalRunner, **changes: object) -> tuple[Integration, str, str, str]:
    """A fresh, connected Bitrix24 integration on its own fake portal; returns it, secret, member id, app token."""
    from leadbridge_local.seed import connect_bitrix24

    suffix = uuid.uuid4().hex[:8]
    member_id = uuid.uuid4().hex
    application_token = uuid.uuid4().hex
    integration = Integration(
        integration_id=f"b24-{suffix}",
        crm="bitrix24",
        crm_domain=f"t{suffix}.bitrix24.ru",
        client_id=f"local.{suffix}",
        client_secret=f"client-secret-{uuid.uuid4().hex}",
        traffic_type="source",
        default_target=TrafficTarget(source_id=501, site_id=601),
        messenger_targets={"telegram": TrafficTarget(source_id=502, site_id=601)},
        employee_id=43,
    )
    integration = replace(integration, **changes)  # type: ignore[arg-type]
    secret = install_integration(runner, integration, application_token=application_token)
    connect_bitrix24(runner, integration, member_id)
    return integration, secret, member_id, application_token


def bitrix_fields(integration: Integration, member_id: str, application_token: str, entity_id: int) -> dict[str, str]:
    return {
        "data[FIELDS][ID]": str(entity_id),
        "auth[domain]": integration.crm_domain,
        "auth[member_id]": member_id,
        "auth[application_token]": application_token,
    }


def add_amo_talks(
    runner: LocalRunner,
    integration: Integration,
    talks: Iterable[int],
    *,
    origin: str = "telegram",
    created_at: int = 1773000000,
    contact: dict[str, object] | None = None,
) -> None:
    """Talks in the fake amoCRM account: lead ``talk * 10`` and contact ``talk * 100`` (named Ann unless given)."""
    for talk in talks:
        runner.amocrm.add_talk(
            integration.account_name,
            talk,
            lead_id=talk * 10,
            contact_id=talk * 100,
            origin=origin,
            created_at=created_at,
            lead={},
            contact={"name": "Ann"} if contact is None else contact,
        )


def post_amo_talks(
    runner: LocalRunner, integration: Integration, secret: str, account: int, talks: Iterable[int], action: str = "add"
) -> None:
    """Each talk's webhook, as amoCRM posts it (``add`` or ``update``), for the talks of ``add_amo_talks``."""
    sample = "talk_add.json" if action == "add" else "talk_update_same_talk.json"
    for talk in talks:
        fields = talk_fields(action, talk, talk * 10, talk * 100, integration.account_name, account)
        body = sample_body("amo_hook", sample, **fields)
        assert runner.post(f"/hooks/amocrm/{integration.integration_id}/{secret}/", body).status_code == 200


def integration_status(runner: LocalRunner, integration_id: str) -> dict[str, Any]:
    return DynamoIntegrations(runner.stack.ref("IntegrationsTable")).status(integration_id)


def last_sweep(runner: LocalRunner, integration_id: str) -> dict[str, Any]:
    """What the integration's last sweep job listed, found known and enqueued, and whether it listed its window to
    the end (the status's ``last_sweep``)."""
    found: dict[str, Any] = integration_status(runner, integration_id).get("last_sweep") or {}
    return found


def dead_jobs(runner: LocalRunner, integration_id: str) -> list[dict[str, Any]]:
    """The integration's jobs in the jobs DLQ (taken out of it)."""
    return [m for m in runner.take_messages("JobsDeadLetterQueue") if integration_id in m["Body"]]

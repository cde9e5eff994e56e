"""The demo's integrations: what a customer's admin would have set up, matching the samples in ``events/``."""

from __future__ import annotations

from leadbridge.integration import Integration, SessionField, TrafficTarget
from leadbridge_local.runner import LocalRunner
from leadbridge_local.seed import connect_amocrm, install_integration

DEMO_AMO_SECRET = "demo-amocrm-secret-do-not-use-in-production"  # noqa: S105 - the samples' published demo value
DEMO_AMO = Integration(
    integration_id="demo-amocrm",
    crm="amocrm",
    crm_domain="example.amocrm.ru",
    name="Demo amoCRM",
    client_id="demo-client-id",
    client_secret="demo-client-secret",  # noqa: S106 - accepted only by the local fake
    session_field=SessionField(field_id=778899, entity="lead"),
    traffic_type="campaign",
    default_target=TrafficTarget(campaign_id=1001),
    messenger_targets={"whatsapp": TrafficTarget(campaign_id=1002), "telegram": TrafficTarget(campaign_id=1003)},
    employee_id=42,
)


def install_demo_integrations(runner: LocalRunner) -> None:
    install_integration(runner, DEMO_AMO, DEMO_AMO_SECRET)
    connect_amocrm(runner, DEMO_AMO, account_id=29085955)

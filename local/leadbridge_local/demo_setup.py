"""The demo's integrations: what a customer's admin would have set up, matching the samples in ``events/``."""

from __future__ import annotations

from leadbridge.contract.integration import Integration, SessionField, TrafficTarget
from leadbridge_local.runner import LocalRunner
from leadbridge_local.seed import connect_through_oauth, install_integration

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

DEMO_B24_SECRET = "demo-bitrix24-secret-do-not-use-in-production"  # noqa: S105 - the samples' published demo value
DEMO_B24_APPLICATION_TOKEN = "51856fefc120afa4b628cc82d3935cce"  # noqa: S105 - the Bitrix24 docs' example value
DEMO_B24_MEMBER_ID = "d897063e1ce7c5eb9f04b9751eef5915"
DEMO_B24 = Integration(
    integration_id="demo-bitrix24",
    crm="bitrix24",
    crm_domain="example.bitrix24.ru",
    name="Demo Bitrix24 Open Lines",
    client_id="local.6667fc928a50a9.70414732",
    client_secret="demo-bitrix-client-secret",  # noqa: S106 - accepted only by the local fake
    traffic_type="source",
    default_target=TrafficTarget(source_id=501, site_id=601),
    messenger_targets={
        "telegram": TrafficTarget(source_id=502, site_id=601),
        "whatsapp": TrafficTarget(source_id=503, site_id=601),
    },
    employee_id=43,
)


def install_demo_integrations(runner: LocalRunner) -> None:
    """Save both integrations and connect them through the OAuth redirect, as an admin would."""
    install_integration(runner, DEMO_AMO, DEMO_AMO_SECRET)
    install_integration(runner, DEMO_B24, DEMO_B24_SECRET, application_token=DEMO_B24_APPLICATION_TOKEN)
    for integration, account in ((DEMO_AMO, "29085955"), (DEMO_B24, DEMO_B24_MEMBER_ID)):
        status = connect_through_oauth(runner, integration, account)
        if status != 200:
            raise RuntimeError(f"connecting {integration.integration_id} answered {status}")
    seed_demo_chat_events(runner)


def seed_demo_chat_events(runner: LocalRunner) -> None:
    """amoCRM's events log knows talk 191's chat on lead 9276114 (the samples' first talk), so the digital-pipeline
    trigger sample (``trigger_lead_in_stage.json``, the lead entering a stage) finds its chat and joins it."""
    runner.amocrm.add_talk(
        DEMO_AMO.account_name, 191, lead_id=9276114, contact_id=11018118, origin="telegram", created_at=1726581298
    )

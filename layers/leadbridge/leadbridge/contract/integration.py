"""An integration: one customer's CRM account wired to one cabinet, with its settings and status.

Plain dataclasses: the request path reads them on every webhook and must not pay for validation it does not
need. Input from people (the integrations API) is validated before it becomes one of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CrmName = Literal["amocrm", "bitrix24"]
TrafficType = Literal["campaign", "source"]
TriggerLeads = Literal["chats_only", "any_lead"]
ConnectionState = Literal[
    "not_connected", "connected", "reauth_required", "disconnected", "blocked", "insufficient_rights"
]


@dataclass(frozen=True, slots=True)
class SessionField:
    """amoCRM: the custom field that holds the analytics session id, and the entity it sits on."""

    field_id: int
    entity: Literal["lead", "contact"] = "lead"


@dataclass(frozen=True, slots=True)
class TrafficTarget:
    """Where a lead without a session goes: a cabinet campaign, or a source and site."""

    campaign_id: int | None = None
    source_id: int | None = None
    site_id: int | None = None


@dataclass(frozen=True, slots=True)
class Integration:
    integration_id: str
    crm: CrmName
    crm_domain: str
    active: bool = True
    name: str = ""
    client_id: str | None = None
    client_secret: str | None = None
    webhook_secret_hash: str | None = None
    # The secret a rotation replaced: its URL keeps working until ``previous_secret_until`` (unix seconds), so the
    # CRM's admin can paste the new one without losing a delivery.
    previous_webhook_secret_hash: str | None = None
    previous_secret_until: int | None = None
    application_token_hash: str | None = None
    account_id: str | None = None
    session_field: SessionField | None = None
    traffic_type: TrafficType = "campaign"
    default_target: TrafficTarget = field(default_factory=TrafficTarget)
    messenger_targets: dict[str, TrafficTarget] = field(default_factory=dict)
    employee_id: int | None = None
    amo_note_enabled: bool = True
    # amoCRM digital-pipeline triggers: a lead for the lead's chat only, or for any lead entering the stage.
    amo_trigger_leads: TriggerLeads = "chats_only"
    bitrix_enterprise: bool = False
    default_phone_region: str = "RU"
    session_getter: str = "Comagic.getSessionId"

    @property
    def account_name(self) -> str:
        """amoCRM subdomain or Bitrix24 portal domain, as the lead contract names the account."""
        if self.crm == "amocrm":
            return self.crm_domain.split(".", 1)[0]
        return self.crm_domain

    @property
    def is_kommo(self) -> bool:
        return self.crm == "amocrm" and self.crm_domain.endswith(".kommo.com")

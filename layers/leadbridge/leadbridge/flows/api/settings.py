"""What a person may set on an integration, validated per CRM (a discriminated model); errors name the field.

Secrets (OAuth client secret, Bitrix24 application token) are write-only: accepted here, stored (the token as a
hash), never returned. Omitting one on an update keeps the stored value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

AMO_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\.(amocrm\.ru|amocrm\.com|kommo\.com)$")
HOSTNAME = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# Names that never reach a public portal (RFC 6761, 6762, 8375 and the usual private suffixes): the worker would
# send the portal's access token there.
PRIVATE_SUFFIXES = frozenset(
    {
        "localhost",
        "local",
        "localdomain",
        "internal",
        "intranet",
        "lan",
        "home",
        "corp",
        "private",
        "test",
        "invalid",
        "example",
        "arpa",
        "onion",
        "home.arpa",
    }
)
GETTER = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")
Id = Annotated[int, Field(ge=1, le=2**53)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Target(_Strict):
    """A cabinet campaign, or a source and site, for leads without a session."""

    campaign_id: Id | None = None
    source_id: Id | None = None
    site_id: Id | None = None


class SessionFieldSetting(_Strict):
    field_id: Id
    entity: Literal["lead", "contact"] = "lead"


class _Common(_Strict):
    active: bool = True
    name: str = Field(default="", max_length=200)
    crm_domain: str = Field(max_length=253, description="amoCRM account or Bitrix24 portal domain, without https://")
    client_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    client_secret: str | None = Field(default=None, min_length=1, max_length=500, description="Write-only.")
    traffic_type: Literal["campaign", "source"] = "campaign"
    default_target: Target = Field(default_factory=Target)
    messenger_targets: dict[Annotated[str, Field(pattern=r"^[a-z0-9_.-]{1,64}$")], Target] = Field(default_factory=dict)
    employee_id: Id | None = None
    session_getter: str = Field(
        default="Comagic.getSessionId",
        max_length=120,
        description="Page function (dotted name) that returns the analytics session id, for the site script.",
    )

    @field_validator("crm_domain")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower().removeprefix("https://").removeprefix("http://").rstrip("/")

    @field_validator("session_getter")
    @classmethod
    def _getter(cls, value: str) -> str:
        if not GETTER.match(value):
            raise ValueError("must be a dotted JavaScript name such as Comagic.getSessionId")
        return value

    @model_validator(mode="after")
    def _targets_match_traffic_type(self) -> _Common:
        for where, target in [
            ("default_target", self.default_target),
            *(("messenger_targets." + k, t) for k, t in self.messenger_targets.items()),
        ]:
            if self.traffic_type == "campaign" and (target.source_id or target.site_id):
                raise ValueError(f"{where}: traffic type 'campaign' takes campaign_id only")
            if self.traffic_type == "source" and target.campaign_id:
                raise ValueError(f"{where}: traffic type 'source' takes source_id and site_id")
            if self.traffic_type == "source" and bool(target.source_id) != bool(target.site_id):
                raise ValueError(f"{where}: a source needs its site")
        return self


class AmoCrmSettings(_Common):
    crm: Literal["amocrm"]
    session_field: SessionFieldSetting | None = Field(
        default=None,
        description="The custom field a Salesbot step copies the session into (the fallback to the Salesbot "
        "widget_request, which needs no field).",
    )
    note_enabled: bool = True
    trigger_leads: Literal["chats_only", "any_lead"] = Field(
        default="chats_only",
        description="Digital-pipeline triggers: a lead for the lead's chat only, or for any lead entering the "
        "stage (channel.kind crm_stage when it has no chat).",
    )

    @field_validator("crm_domain")
    @classmethod
    def _amo_domain(cls, value: str) -> str:
        if not AMO_DOMAIN.match(value):
            raise ValueError("must be an account domain such as example.amocrm.ru or example.kommo.com")
        return value


class Bitrix24Settings(_Common):
    crm: Literal["bitrix24"]
    application_token: str | None = Field(
        default=None, min_length=8, max_length=200, description="Write-only: the outgoing webhook's application token."
    )
    enterprise: bool = Field(default=False, description="Enterprise plan: 5 requests/s with a burst of 250.")

    @field_validator("crm_domain")
    @classmethod
    def _portal_domain(cls, value: str) -> str:
        # HOSTNAME wants a letters-only top-level label: an IP address (v4 or v6) never matches.
        if not HOSTNAME.match(value) or value.rsplit(".", 1)[-1] in PRIVATE_SUFFIXES:
            raise ValueError("must be a public portal domain such as example.bitrix24.ru or b24.example.ru")
        return value


IntegrationSettings = Annotated[AmoCrmSettings | Bitrix24Settings, Field(discriminator="crm")]


class IntegrationView(_Strict):
    integration_id: str
    crm: Literal["amocrm", "bitrix24"]
    active: bool
    name: str
    crm_domain: str
    account_id: str | None
    client_id: str | None
    has_client_secret: bool
    has_webhook_secret: bool
    has_application_token: bool | None
    traffic_type: Literal["campaign", "source"]
    default_target: Target
    messenger_targets: dict[str, Target]
    employee_id: int | None
    session_field: SessionFieldSetting | None
    note_enabled: bool | None
    trigger_leads: Literal["chats_only", "any_lead"] | None = None
    enterprise: bool | None
    session_getter: str


class BackfillRequest(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    period_from: AwareDatetime = Field(alias="from", description="Start of the period (inclusive), ISO 8601.")
    period_to: AwareDatetime = Field(
        alias="to", description="End of the period (exclusive), ISO 8601; a time after now means now."
    )


class BackfillProgress(_Strict):
    backfill_id: str
    state: Literal["running", "done", "cancelled"]
    period_from: int = Field(description="Unix seconds, inclusive.")
    period_to: int = Field(description="Unix seconds, exclusive.")
    total: int = Field(description="Conversations found in the period so far (final once total_final).")
    total_final: bool = Field(description="The listing is complete: total will not grow.")
    done: int = Field(description="Imported: handed to the pipeline (each becomes one lead unless it is no chat).")
    already_known: int = Field(description="A webhook or the sweep had brought them in already.")
    errors: int = Field(description="Could not be read from the CRM (deleted, refused).")
    remaining: int
    started_at: int
    updated_at: int | None
    finished_at: int | None
    last_error: str | None = Field(description="Why the last run paused (the next run goes on).")


class DriftCheck(_Strict):
    since: int
    until: int
    unsorted_chats: int = Field(description="Chats amoCRM put into Unsorted in the window.")
    emitted: int = Field(description="Leads this integration emitted in the window.")
    missing: int = Field(description="Chats without a lead (0 when emitted >= unsorted_chats).")


class ChatChannelView(_Strict):
    state: Literal["not_connected", "connecting", "connected", "disconnecting", "disconnected", "failed"]
    scope_id: str | None = Field(description="amojo's scope of the channel on this account, once connected.")
    changed_at: int | None
    error: str | None = Field(description="Why connecting failed (no channel configured, amojo refused...).")


class ErrorBody(_Strict):
    """Every error answer of the API (4xx, 5xx), whatever went wrong: never the input itself."""

    code: str = Field(description="invalid, not_found, conflict, non_public_host, invalid_period, internal")
    message: str
    field: str | None = Field(default=None, description="The setting or parameter it is about, when one is.")
    detail: Any = Field(default=None, description="The message again, or the validation errors' places and reasons.")


class SetupStepView(_Strict):
    step: str = Field(
        description="active, oauth_client, oauth_connected, rights, hook_subscribed, webhook, events, "
        "default_target, session_field (amoCRM), first_lead"
    )
    state: Literal["ok", "missing", "failed"]
    reason: str | None = Field(default=None, description="What to do, for a person; never a secret or a token.")


class LastRefusal(_Strict):
    reason: str = Field(description="The hook's reason, e.g. bad_secret, bad_application_token, account_mismatch.")
    at: int


class IntegrationsPage(_Strict):
    items: list[IntegrationView]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null when this page was the last. Opaque."
    )


class SettingsCheckView(_Strict):
    state: Literal["ok", "pending", "session_field_missing", "session_field_unusable"] = Field(
        description="pending: the CRM could not be asked (not connected yet, or it failed); the scheduled jobs check "
        "again within 15 minutes. session_field_missing: the chosen field is gone from the CRM: leads lose their "
        "session until another is chosen."
    )
    checked_at: int
    detail: str


class CrmFieldView(_Strict):
    id: str = Field(description="amoCRM: the field id (session_field.field_id); Bitrix24: the field code.")
    name: str
    type: str = Field(description="The CRM's own type name.")
    entity: str = Field(description="amoCRM lead or contact; Bitrix24 lead or deal.")
    holds_session: bool = Field(description="A text field the session id can be written into.")


class CrmChannelView(_Strict):
    key: str | None = Field(
        description="The messenger_targets key a lead from this channel is looked up by; null: the site's own chat "
        "(it has a session, or goes to default_target)."
    )
    name: str
    origin: str = Field(description="The CRM's raw value: amoCRM talk origin, Bitrix24 connector id.")
    where: str = Field(
        description="account_chats (amoCRM chats of the last 30 days), account_source (the integration's own "
        "amoCRM source), known_origin (an origin docs/channels.md knows), open_line <id> (a Bitrix24 line with "
        "this connector connected), known_connector (Bitrix24 when the connectors may not be listed)."
    )


class CrmStageView(_Strict):
    id: str
    name: str


class CrmPipelineView(_Strict):
    id: str = Field(description="amoCRM pipeline id; Bitrix24 STATUS (the lead statuses) or a deal category id.")
    name: str
    entity: str
    stages: list[CrmStageView]


class CrmFieldsView(_Strict):
    integration_id: str
    crm: Literal["amocrm", "bitrix24"]
    items: list[CrmFieldView]


class CrmChannelsView(_Strict):
    integration_id: str
    crm: Literal["amocrm", "bitrix24"]
    items: list[CrmChannelView]


class CrmPipelinesView(_Strict):
    integration_id: str
    crm: Literal["amocrm", "bitrix24"]
    items: list[CrmPipelineView]


class IntegrationStatus(_Strict):
    integration_id: str
    active: bool
    connection: Literal[
        "not_connected", "connected", "reauth_required", "disconnected", "blocked", "insufficient_rights"
    ] = Field(
        description=(
            "insufficient_rights: amoCRM answered «Недостаточно прав» (last_error says what was refused); the events "
            "wait parked until an admin grants the rights and calls resume, or authorizes again."
        )
    )
    token_expires_at: int | None
    last_event_at: int | None
    last_lead_at: int | None
    last_error: str | None
    last_error_at: int | None
    accepted: int
    emitted: int
    skipped: int
    failed: int
    parked: int = Field(description="Events waiting for a person (re-authorization, an unblocked account) right now.")
    notices: list[str] = Field(
        default_factory=list,
        description="What an admin should know about the account, e.g. filtered_reads_refused (amoCRM read per id).",
    )
    settings_check: SettingsCheckView | None = Field(
        default=None, description="What the CRM said of the saved settings at the last save or daily check."
    )
    unknown_mapping_keys: list[str] = Field(
        default_factory=list,
        description="messenger_targets keys that no channel of the account produces (GET .../crm/channels): kept, "
        "but no lead will match them as they are.",
    )
    unknown_channels: list[str] = Field(
        default_factory=list,
        description="Raw channel values (amoCRM origin, Bitrix24 connector) no mapping knows yet; see docs/channels.md.",
    )
    dropped: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "Webhook items the CRM sent that could not be used, by why (amoCRM: message_without_talk, "
            "unusable_message, malformed_talk, missing_account_id, too_many_events); answered 2xx all the same."
        ),
    )
    backfill: BackfillProgress | None = Field(default=None, description="The latest backfill, if any.")
    chat_channel: ChatChannelView | None = Field(
        default=None, description="amoCRM: the site chat channel (Chats API) on this account."
    )
    drift: DriftCheck | None = Field(
        default=None, description="amoCRM: the last hourly check of Unsorted chats against the leads emitted."
    )
    setup: list[SetupStepView] = Field(
        default_factory=list,
        description="The set-up checklist: one entry per step the CRM's admin takes, each ok, missing or failed.",
    )
    last_webhook_at: int | None = Field(default=None, description="When the hook last took a delivery.")
    last_refusal: LastRefusal | None = Field(default=None, description="The hook's last refused delivery.")
    refused: dict[str, int] = Field(
        default_factory=dict,
        description="Deliveries the hook refused, by reason (bad_secret, bad_application_token...).",
    )
    ignored: dict[str, int] = Field(
        default_factory=dict,
        description="Events the hook took but does not use, by the CRM's event name (e.g. ONCRMINVOICEADD).",
    )
    portal_moved: dict[str, str] | None = Field(
        default=None, description="Bitrix24: the portal's address changed (from, to); the new one is in use."
    )


class ResumeResult(_Strict):
    resumed: int = Field(description="Parked events sent back to the inbox.")
    waiting_for: Literal["reauth_required"] | None = Field(
        default=None, description="Nothing was resumed: the grant is dead, so an admin must authorize again first."
    )


class WebhookSecretIssued(_Strict):
    webhook_url: str = Field(description="Shown once: only a hash of its secret is stored.")


class AuthorizeUrl(_Strict):
    url: str

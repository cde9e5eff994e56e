"""The set-up checklist in an integration's status: one entry per step the product texts ask of the CRM's admin,
each ``ok``, ``missing`` or ``failed`` with what to do, read from the settings and the status counters the hooks,
the worker and the OAuth callback keep. Plain Python over what the status item holds: no CRM call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from leadbridge.contract.integration import Integration
from leadbridge.flows.connect.crm_lists import SESSION_FIELD_PROBLEMS

StepState = Literal["ok", "missing", "failed"]

# What a refused delivery means for the admin, by the hook's reason.
REFUSALS = {
    "bad_secret": "the CRM posts to an old or mistyped hook URL: issue one (POST /integrations/{id}/webhook-secret) "
    "and paste it into the CRM",
    "bad_application_token": "the application token saved here is not the one the CRM signs with: copy it from the "
    "CRM's webhook form (or the app's install) and save it",
    "member_mismatch": "deliveries come from another Bitrix24 portal than the one connected",
    "account_mismatch": "deliveries come from another amoCRM account than the one connected",
    "domain_mismatch": "deliveries name another portal than the integration's domain (connect it through OAuth)",
    "integration_inactive": "the CRM posts, but the integration is switched off",
    "missing_account": "the CRM's deliveries carry no account: check the webhook's settings in the CRM",
    "malformed_body": "the deliveries are not the CRM's webhook form",
    "malformed_event": "the deliveries carry no event or no application token",
}
WANTED_EVENTS = {
    "amocrm": "tick «Беседа добавлена» and «Беседа изменена» (talks), and incoming messages for the chat text",
    "bitrix24": "tick ONCRMLEADADD (and ONCRMDEALADD when the open line creates deals), not ONCRMINVOICEADD",
}


class SetupStep(NamedTuple):
    step: str
    state: StepState
    reason: str | None = None


def setup_checklist(integration: Integration, status: Mapping[str, Any], connection: str) -> list[SetupStep]:
    """``connection``: the integration's connection state as the status reports it."""
    steps = [
        _active(integration),
        _client(integration),
        _connected(integration, status, connection),
        _rights(status, connection),
        _subscription(status),
        _webhook(integration, status),
        _events(integration, status),
        _default_target(integration),
    ]
    if integration.crm == "amocrm":
        steps.append(_session_field(integration, status))
    steps.append(
        SetupStep("first_lead", "ok")
        if status.get("last_lead_at")
        else SetupStep("first_lead", "missing", "no lead yet: the first one comes with the first new chat")
    )
    return steps


def _active(integration: Integration) -> SetupStep:
    if integration.active:
        return SetupStep("active", "ok")
    return SetupStep("active", "missing", "the integration is switched off: PUT it with active: true")


def _client(integration: Integration) -> SetupStep:
    if integration.client_id and integration.client_secret:
        return SetupStep("oauth_client", "ok")
    return SetupStep(
        "oauth_client", "missing", "save the client id and secret of the CRM's integration (app) in the settings"
    )


def _connected(integration: Integration, status: Mapping[str, Any], connection: str) -> SetupStep:
    if connection in {"connected", "blocked", "insufficient_rights"}:
        return SetupStep("oauth_connected", "ok")
    failure = status.get("last_connect_failure")
    if connection == "reauth_required":
        return SetupStep("oauth_connected", "failed", "the CRM no longer honours the grant: authorize again")
    if isinstance(failure, str) and failure:
        return SetupStep("oauth_connected", "failed", f"the last connect failed ({failure}): authorize again")
    name = "amoCRM" if integration.crm == "amocrm" else "Bitrix24"
    return SetupStep(
        "oauth_connected", "missing", f"open the authorize URL (GET /integrations/{{id}}/authorize-url) in {name}"
    )


def _rights(status: Mapping[str, Any], connection: str) -> SetupStep:
    missing = [str(s) for s in status.get("missing_scopes") or []]
    reads = [m for m in missing if m.startswith("GET ")]  # amoCRM: reads refused to the grant's user at connect
    scopes = [m for m in missing if not m.startswith("GET ")]  # Bitrix24: scopes the app was not granted
    if scopes:
        return SetupStep(
            "rights",
            "failed",
            f"the app was granted no {', '.join(sorted(scopes))} scope: add it in the app's settings and authorize "
            "again",
        )
    if reads:
        return SetupStep(
            "rights",
            "failed",
            f"the authorizing user may not read {', '.join(reads)}: grant the rights (or authorize as an admin)",
        )
    if connection == "insufficient_rights":
        return SetupStep("rights", "failed", f"{status.get('last_error') or 'refused'}: grant the rights, then resume")
    if connection == "blocked":
        return SetupStep("rights", "failed", f"the CRM refuses every call ({status.get('last_error') or 'blocked'})")
    if connection == "connected":
        return SetupStep("rights", "ok")
    return SetupStep("rights", "missing", "known once the integration is connected")


def _subscription(status: Mapping[str, Any]) -> SetupStep:
    """The integration's own webhook subscription (amoCRM's webhooks API, Bitrix24's event.bind; made at connect,
    checked twice a day)."""
    found = status.get("hook_subscription")
    if not isinstance(found, dict):
        return SetupStep("hook_subscribed", "missing", "made when the integration connects through OAuth")
    if found.get("state") == "failed":
        return SetupStep(
            "hook_subscribed",
            "failed",
            f"the CRM refused the subscription ({found.get('detail') or 'refused'}): authorize as an admin, or set "
            "the hook URL by hand with the events (README)",
        )
    return SetupStep("hook_subscribed", "ok")


def _webhook(integration: Integration, status: Mapping[str, Any]) -> SetupStep:
    taken_at = float(status.get("last_webhook_at") or 0)
    refusal = status.get("last_refusal")
    refused_at = float(status.get("last_refusal_at") or 0)
    if isinstance(refusal, str) and refused_at >= taken_at:
        advice = REFUSALS.get(refusal, f"deliveries refused ({refusal})")
        return SetupStep("webhook", "failed", advice.replace("{id}", integration.integration_id))
    if taken_at:
        return SetupStep("webhook", "ok")
    return SetupStep(
        "webhook",
        "missing",
        "no delivery yet: issue the hook URL (POST /integrations/{id}/webhook-secret) and set it in the CRM".replace(
            "{id}", integration.integration_id
        ),
    )


def _events(integration: Integration, status: Mapping[str, Any]) -> SetupStep:
    if int(status.get("count_accepted") or 0) > 0:
        return SetupStep("events", "ok")
    ignored = sorted(k.removeprefix("ignored_") for k in status if k.startswith("ignored_"))
    if ignored:
        return SetupStep(
            "events",
            "failed",
            f"the hook sends only events this service does not use ({', '.join(ignored[:5])}): "
            + WANTED_EVENTS[integration.crm],
        )
    return SetupStep("events", "missing", WANTED_EVENTS[integration.crm])


def _default_target(integration: Integration) -> SetupStep:
    target = integration.default_target
    chosen = (
        target.campaign_id is not None
        if integration.traffic_type == "campaign"
        else target.source_id is not None and target.site_id is not None
    )
    if chosen:
        return SetupStep("default_target", "ok")
    what = "campaign" if integration.traffic_type == "campaign" else "source and site"
    return SetupStep(
        "default_target", "missing", f"choose the default {what} for leads that come without a web session"
    )


def _session_field(integration: Integration, status: Mapping[str, Any]) -> SetupStep:
    checked = status.get("settings_check")
    state = checked.get("state") if isinstance(checked, dict) else None
    if integration.session_field is not None and state in SESSION_FIELD_PROBLEMS:
        return SetupStep(
            "session_field",
            "failed",
            f"{state}: the chosen field is gone from amoCRM or cannot hold text; choose one of GET "
            "/integrations/{id}/crm/fields with holds_session",
        )
    if integration.session_field is not None:
        return SetupStep("session_field", "ok")
    return SetupStep(
        "session_field",
        "missing",
        "no session field chosen: sessions reach leads only through the online chat's bot_params or a Salesbot "
        "step; create the custom field and choose it to catch the rest",
    )

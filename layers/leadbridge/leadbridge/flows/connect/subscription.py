"""The integration subscribes its own amoCRM webhook, with the OAuth grant the admin has just given.

``POST /api/v4/webhooks`` (crm_platform/webhooks-api) with the integration's hook URL and the talk events it needs,
after the connect and again whenever the daily check finds it gone, disabled, on other events or on a secret that is
no longer current. The URL's secret is stored only as a hash, so a (re-)subscription issues a new one: the URL it
replaces keeps working for the rotation's grace period, and the integration's older subscriptions are removed.
Manual set-up stays possible: a hook the admin pasted by hand is left alone until its secret is replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, Protocol
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from leadbridge.contract.integration import Integration
from leadbridge.contract.webhook_secret import hash_secret, new_secret, secret_matches
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.http.errors import CrmError

logger = Logger(child=True)

# Talks added and changed (the documented event names). amoCRM's incoming-message webhook is not in the API's
# list, so the chat text still needs the admin's tick in the UI (README).
HOOK_EVENTS = ["add_talk", "update_talk"]
CHECK_EVERY_SECONDS = 12 * 3600  # within the rotation's default grace (a day): a rotated URL is re-subscribed in time

SubscriptionState = Literal["subscribed", "present", "restored", "failed"]


class Settings(Protocol):
    def rotate_webhook_secret(
        self, integration_id: str, new_hash: str, previous_hash: str | None, previous_until: int | None
    ) -> None: ...

    def record_hook_subscription(self, integration_id: str, state: str, detail: str | None = None) -> None: ...


def hook_prefix(base_url: str, integration: Integration) -> str:
    return f"{base_url.rstrip('/')}/hooks/amocrm/{integration.integration_id}/"


def ensure_subscription(
    integration: Integration,
    client: AmoClient,
    settings: Settings,
    base_url: str,
    grace_seconds: int,
    first: bool = False,
    clock: Callable[[], float] = time.time,
) -> SubscriptionState:
    """Make the account's subscription to this integration's hook current; returns what it found or did. CRM
    refusals (no admin rights, an outage) are recorded as ``failed`` and raised for the caller to judge."""
    prefix = hook_prefix(base_url, integration)
    try:
        ours = [w for w in client.webhooks() if str(w.get("destination", "")).startswith(prefix)]
        if any(_current(w, prefix, integration) for w in ours):
            settings.record_hook_subscription(integration.integration_id, "present")
            return "present"
        secret = new_secret()
        now = int(clock())
        settings.rotate_webhook_secret(
            integration.integration_id,
            hash_secret(secret),
            integration.webhook_secret_hash,
            now + grace_seconds if integration.webhook_secret_hash else None,
        )
        client.subscribe_webhook(f"{prefix}{secret}/", list(HOOK_EVENTS))
        for old in ours:  # this integration's earlier subscriptions: their secrets are no longer current
            client.unsubscribe_webhook(str(old["destination"]))
    except CrmError as exc:
        settings.record_hook_subscription(integration.integration_id, "failed", f"{type(exc).__name__}: {exc}"[:300])
        raise
    state: SubscriptionState = "subscribed" if first else "restored"
    settings.record_hook_subscription(integration.integration_id, state, ", ".join(HOOK_EVENTS))
    logger.info("amoCRM webhook subscribed", extra={"integration_id": integration.integration_id, "state": state})
    return state


def _current(hook: dict[str, object], prefix: str, integration: Integration) -> bool:
    """A subscription of this integration that delivers: enabled, on the events, with the current secret."""
    path = urlsplit(str(hook.get("destination", ""))).path
    secret = str(hook.get("destination", ""))[len(prefix) :].strip("/")
    events = hook.get("settings")
    return (
        bool(path)
        and not hook.get("disabled")
        and isinstance(events, list)
        and set(HOOK_EVENTS) <= {str(e) for e in events}
        and secret_matches(secret, integration.webhook_secret_hash)
    )

"""The integration subscribes its own webhook, with the OAuth grant the admin has just given.

amoCRM: ``POST /api/v4/webhooks`` with the talk events; Bitrix24: ``event.bind`` for ONCRMLEADADD and ONCRMDEALADD
(each CRM's ``subscription.py``). After the connect, and again whenever the twice-daily check finds it gone,
disabled, on other events or on a secret that is no longer current. The URL's secret is stored only as a hash, so a (re-)subscription issues a new one: the URL it
replaces keeps working for the rotation's grace period, and the integration's older subscriptions are removed.
Manual set-up stays possible: a hook the admin pasted by hand is left alone until its secret is replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, Protocol

from aws_lambda_powertools import Logger

from leadbridge.contract.integration import Integration
from leadbridge.contract.webhook_secret import hash_secret, new_secret, secret_matches
from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.amocrm.subscription import AmoHookSubscriptions
from leadbridge.crms.bitrix24.client import BitrixClient
from leadbridge.crms.bitrix24.subscription import BitrixHookSubscriptions
from leadbridge.crms.hook_subscriptions import HookSubscriptions, Subscription
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.http.errors import CrmError
from leadbridge.http.ratelimit import SharedLimiter

logger = Logger(child=True)

CHECK_EVERY_SECONDS = 12 * 3600  # within the rotation's default grace (a day): a rotated URL is re-subscribed in time

SubscriptionState = Literal["subscribed", "present", "restored", "failed"]


class Settings(Protocol):
    def rotate_webhook_secret(
        self, integration_id: str, new_hash: str, previous_hash: str | None, previous_until: int | None
    ) -> None: ...

    def record_hook_subscription(self, integration_id: str, state: str, detail: str | None = None) -> None: ...


def subscriptions_for(integration: Integration, tokens: TokenProvider, limiter: SharedLimiter) -> HookSubscriptions:
    if integration.crm == "amocrm":
        return AmoHookSubscriptions(AmoClient(integration, tokens, limiter))
    return BitrixHookSubscriptions(BitrixClient(integration, tokens, limiter))


def hook_prefix(base_url: str, integration: Integration) -> str:
    return f"{base_url.rstrip('/')}/hooks/{integration.crm}/{integration.integration_id}/"


def ensure_subscription(
    integration: Integration,
    crm: HookSubscriptions,
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
        ours = crm.ours(prefix)
        if any(_current(found, prefix, integration, crm.events) for found in ours):
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
        crm.subscribe(f"{prefix}{secret}{crm.url_suffix}")
        for old in ours:  # this integration's earlier subscriptions: their secrets are no longer current
            crm.unsubscribe(old)
    except CrmError as exc:
        settings.record_hook_subscription(integration.integration_id, "failed", f"{type(exc).__name__}: {exc}"[:300])
        raise
    state: SubscriptionState = "subscribed" if first else "restored"
    settings.record_hook_subscription(integration.integration_id, state, ", ".join(crm.events))
    logger.info("webhook subscribed", extra={"integration_id": integration.integration_id, "state": state})
    return state


def _current(found: Subscription, prefix: str, integration: Integration, events: tuple[str, ...]) -> bool:
    """A subscription of this integration that delivers: enabled, on the events, with the current secret."""
    secret = found.destination[len(prefix) :].strip("/")
    return found.enabled and set(events) <= found.events and secret_matches(secret, integration.webhook_secret_hash)


def remove_subscriptions(integration: Integration, crm: HookSubscriptions, base_url: str) -> int:
    """Every subscription of this integration's hook in its CRM (a deactivation); how many were removed."""
    found = crm.ours(hook_prefix(base_url, integration))
    for subscription in found:
        crm.unsubscribe(subscription)
    return len(found)

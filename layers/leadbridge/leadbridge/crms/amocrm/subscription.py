"""amoCRM's webhook subscriptions (``/api/v4/webhooks``, crm_platform/webhooks-api; an account admin's grant)."""

from __future__ import annotations

from leadbridge.crms.amocrm.client import AmoClient
from leadbridge.crms.hook_subscriptions import Subscription

# Talks added and changed (the documented names). The incoming-message webhook is not in the API's list: the chat
# text still needs the admin's tick in amoCRM's UI.
HOOK_EVENTS = ("add_talk", "update_talk")


class AmoHookSubscriptions:
    events: tuple[str, ...] = HOOK_EVENTS
    url_suffix: str = "/"  # amoCRM may refuse a hook URL without it

    def __init__(self, client: AmoClient) -> None:
        self.client = client

    def ours(self, prefix: str) -> list[Subscription]:
        return [
            Subscription(
                destination=str(hook["destination"]),
                events=frozenset(str(e) for e in hook.get("settings") or [] if isinstance(e, str)),
                enabled=not hook.get("disabled"),
            )
            for hook in self.client.webhooks()
            if str(hook.get("destination", "")).startswith(prefix)
        ]

    def subscribe(self, destination: str) -> None:
        self.client.subscribe_webhook(destination, list(self.events))

    def unsubscribe(self, subscription: Subscription) -> None:
        self.client.unsubscribe_webhook(subscription.destination)

"""Bitrix24's event handlers of the application (``event.bind`` / ``event.get`` / ``event.unbind``,
api-reference/events). Deliveries to them carry the application's ``application_token``."""

from __future__ import annotations

from leadbridge.crms.bitrix24.client import BitrixClient
from leadbridge.crms.hook_subscriptions import Subscription

HOOK_EVENTS = ("ONCRMLEADADD", "ONCRMDEALADD")


class BitrixHookSubscriptions:
    events: tuple[str, ...] = HOOK_EVENTS
    url_suffix: str = ""

    def __init__(self, client: BitrixClient) -> None:
        self.client = client

    def ours(self, prefix: str) -> list[Subscription]:
        by_handler: dict[str, set[str]] = {}
        for handler in self.client.bound_events():
            url = str(handler.get("handler", "")).replace("\\/", "/")
            if url.startswith(prefix):
                by_handler.setdefault(url, set()).add(str(handler.get("event", "")).upper())
        return [Subscription(url, frozenset(events)) for url, events in by_handler.items()]

    def subscribe(self, destination: str) -> None:
        for event in self.events:
            self.client.bind_event(event, destination)

    def unsubscribe(self, subscription: Subscription) -> None:
        for event in subscription.events:
            self.client.unbind_event(event, subscription.destination)

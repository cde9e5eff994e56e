"""What subscribing an integration's own webhook asks of a CRM (each CRM's ``subscription.py`` answers it): list
the subscriptions at an address prefix, subscribe an address to the events the integration needs, remove one."""

from __future__ import annotations

from typing import NamedTuple, Protocol


class Subscription(NamedTuple):
    destination: str
    events: frozenset[str]
    enabled: bool = True


class HookSubscriptions(Protocol):
    events: tuple[str, ...]  # what the integration needs delivered
    url_suffix: str  # after the secret: amoCRM wants a trailing slash

    def ours(self, prefix: str) -> list[Subscription]: ...

    def subscribe(self, destination: str) -> None: ...

    def unsubscribe(self, subscription: Subscription) -> None: ...

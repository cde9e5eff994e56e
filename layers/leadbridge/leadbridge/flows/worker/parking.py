"""Events that wait for a person leave the inbox, and come back when the integration is connected again.

An integration whose grant is dead (``reauth_required``), whose amoCRM account is blocked, or that was never
connected cannot call its CRM until someone acts. Retrying its events in the inbox would only burn their receive
count and move the whole backlog to the DLQ within hours; so the worker parks them (``store.parked``) and
acknowledges the inbox message. Whatever connects the integration again resumes them: the OAuth callback, the
sweep's probe of a blocked account, or an operator (``POST /integrations/{id}/resume``). Resuming sends each
parked event back through the inbox, where the lead ledger keeps it to one lead per conversation.

Parking and resuming can cross: a worker that read "reauth_required" a moment ago may park after the callback has
already resumed. So after parking, the worker looks at the state again (a consistent read) and, if the integration
was connected after what the decision to park was based on, resumes the integration itself. (An integration that
has been "connected" all along while its tokens say otherwise is left parked, not resumed in a loop.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from leadbridge.aws.queues import InboxMessage
from leadbridge.aws.store.parked import ParkedEvent

logger = Logger(child=True)

WAITING_STATES = frozenset({"reauth_required", "blocked", "disconnected", "insufficient_rights"})
STATE_CACHE_SECONDS = 10


class ParkedStore(Protocol):
    def park(self, integration_id: str, lead_key: str, body: str, reason: str, now: int) -> bool: ...

    def list(self, integration_id: str, limit: int = 1000) -> list[ParkedEvent]: ...

    def remove(self, integration_id: str, event: ParkedEvent) -> None: ...


class Inbox(Protocol):
    def send_many(self, messages: list[InboxMessage], deduplication_salt: str = "") -> None: ...


class StatusSource(Protocol):
    def status(self, integration_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ConnectionState:
    state: str | None
    changed_at: int


class Parking:
    def __init__(
        self,
        store: ParkedStore,
        inbox: Inbox,
        statuses: StatusSource,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.inbox = inbox
        self.statuses = statuses
        self.clock = clock
        self._cache: dict[str, tuple[float, ConnectionState]] = {}

    def waiting_for(self, integration_id: str) -> tuple[str | None, float]:
        """The state an integration waits in, if any, and when it was read (cached briefly: once per batch, not
        once per event)."""
        now = self.clock()
        cached = self._cache.get(integration_id)
        if cached is None or now - cached[0] > STATE_CACHE_SECONDS:
            cached = (now, self._current(integration_id))
            self._cache[integration_id] = cached
        state = cached[1].state
        return (state if state in WAITING_STATES else None), cached[0]

    def park(self, message: InboxMessage, reason: str, decided_at: float) -> None:
        """Park the event; ``decided_at``: when what the decision was based on was read."""
        self.store.park(message.integration_id, message.lead_key, message.to_json(), reason, int(self.clock()))
        self._cache.pop(message.integration_id, None)
        current = self._current(message.integration_id)
        if current.state == "connected" and current.changed_at >= int(decided_at) - 1:
            # Connected again while we parked: the resume that ran then may not have seen our item.
            logger.info("integration reconnected while parking", extra={"integration_id": message.integration_id})
            self.resume(message.integration_id)

    def resume(self, integration_id: str) -> int:
        """Send every event the integration had parked when this began back to the inbox; returns how many went.

        Only those: an event the worker parks again meanwhile (the integration still waits) stays parked, so a
        resume ends, however fast the worker is."""
        started = int(self.clock())
        resumed = 0
        while True:
            events = [e for e in self.store.list(integration_id, limit=1000) if e.parked_at <= started]
            if not events:
                break
            for event in events:
                self._send_back(integration_id, event)
                resumed += 1
        self._cache.pop(integration_id, None)
        if resumed:
            logger.info("parked events resumed", extra={"integration_id": integration_id, "resumed": resumed})
        return resumed

    def _send_back(self, integration_id: str, event: ParkedEvent) -> None:
        try:
            message = InboxMessage.from_json(event.body)
        except (ValueError, TypeError):
            logger.error("parked event unreadable; dropped", extra={"integration_id": integration_id})
            self.store.remove(integration_id, event)
            return
        # A fresh deduplication id: the original send may be less than 5 minutes old.
        self.inbox.send_many([message], deduplication_salt=f"resumed:{event.parked_at}")
        self.store.remove(integration_id, event)

    def _current(self, integration_id: str) -> ConnectionState:
        record = self.statuses.status(integration_id)
        state = record.get("connection_state")
        return ConnectionState(state if isinstance(state, str) else None, int(record.get("connection_changed_at") or 0))

"""What the worker asks of a CRM's enricher, and what an enricher answers: an emission, a skip, or a wait.

The contract lives with the CRMs, below the worker that drives it, so a CRM never imports a flow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from leadbridge.aws.queues import InboxMessage
from leadbridge.aws.store.ledger import LedgerEntry
from leadbridge.contract.integration import Integration
from leadbridge.contract.lead import NormalizedLead


class RetryLater(Exception):
    def __init__(self, reason: str, delay_seconds: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds


class PoisonEvent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


@dataclass(frozen=True, slots=True)
class Emission:
    lead: NormalizedLead
    after_emit: Callable[[], str] | None = None  # e.g. the amoCRM note; returns a short state for the ledger
    notes: tuple[str, ...] = ()  # facts for the ledger ("activity_missing", "unknown_origin"...)
    # Other ledger keys this conversation is known by (Bitrix24: the lead a deal was converted from, the open-lines
    # session). They are claimed with the event's own key: whichever entity's event comes first emits the lead.
    also_claims: tuple[str, ...] = ()
    crm_lead_id: str | None = None
    crm_lead_created_at: int | None = None


class Enricher(Protocol):
    def prepare(self, batch: list[tuple[InboxMessage, Integration]]) -> None:
        """Fetch what several events of one batch can share (Bitrix24 ``batch`` calls)."""
        ...

    def build(self, message: InboxMessage, integration: Integration, entry: LedgerEntry) -> Emission | Skip: ...

    def ledger_keys_ahead(self, messages: list[InboxMessage]) -> list[str]:
        """Ledger-table items ``prepare`` would read for these events (amoCRM's talk messages and Salesbot
        sessions), read with the batch's first read instead; [] when none."""
        ...

    def other_keys(self, message: InboxMessage) -> tuple[str, ...]:
        """The conversation's other ledger keys (``Emission.also_claims``) as far as ``prepare``'s reads already
        show them, so they are claimed in the same write as the event's own; () when they are known only later."""
        ...

    def follow_up(self, message: InboxMessage, finished: LedgerEntry) -> InboxMessage | None:
        """A later event of a finished conversation that starts a new one (else None: a duplicate)."""
        ...

    def finish_batch(self) -> list[tuple[str, str]]:
        """What the batch left to do in bulk (amoCRM's notes); (lead key, note state) for the ledger."""
        ...

    def absorb(self, message: InboxMessage, integration: Integration) -> None:
        """Act on an event that feeds a conversation without being one (an amoCRM chat message, a Salesbot to
        continue)."""
        ...


class NotReadyYet(Exception):
    """The CRM has not finished writing what the lead needs (Bitrix24's open-lines activity)."""

    def __init__(self, reason: str, delay_seconds: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds


MAX_OVERLAPPED_ACCOUNTS = 8  # CRM accounts a batch reads at the same time (threads waiting on the network)


def overlapped(tasks: Sequence[Callable[[], int]], at_once: int = MAX_OVERLAPPED_ACCOUNTS) -> int:
    """Run each account's share of a batch's CRM requests at the same time as the others' (each task's own requests
    stay one after another, inside its account's shared budget: ``http/ratelimit``). A batch of five accounts waits
    for its slowest account instead of for the five in a row. Returns the sum of what the tasks return (their CRM
    requests); the first exception a task raised is raised once every task has finished."""
    if len(tasks) <= 1:
        return sum(task() for task in tasks)
    with ThreadPoolExecutor(max_workers=min(len(tasks), at_once)) as pool:
        futures = [pool.submit(task) for task in tasks]
    total, first_error = 0, None
    for future in futures:
        error = future.exception()
        if error is None:
            total += future.result()
        elif first_error is None:
            first_error = error
    if first_error is not None:
        raise first_error
    return total

"""One backfill: its period, where its listing stands, and what it has done so far."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Literal

BackfillState = Literal["running", "done", "cancelled"]
MAX_PERIOD_DAYS = 366
EARLIEST = 946_684_800  # 2000-01-01T00:00:00Z: no CRM conversation is older (and every date arithmetic holds)


class InvalidPeriod(ValueError):
    pass


def checked_period(period_from: int, period_to: int, now: int) -> tuple[int, int]:
    """The period to import, ``to`` capped at now; raises ``InvalidPeriod`` with a reason people can act on."""
    period_to = min(period_to, now)
    if period_from < EARLIEST:
        raise InvalidPeriod("'from' must be 2000-01-01T00:00:00Z or later (in UTC)")
    if period_from >= period_to:
        raise InvalidPeriod("'from' must be before 'to' (and before now)")
    if period_to - period_from > MAX_PERIOD_DAYS * 86_400:
        raise InvalidPeriod(f"a backfill covers at most {MAX_PERIOD_DAYS} days; split the period")
    return period_from, period_to


@dataclass(frozen=True, slots=True)
class BackfillJob:
    integration_id: str
    backfill_id: str
    crm: str
    period_from: int  # unix seconds, inclusive
    period_to: int  # unix seconds, exclusive
    started_at: int
    state: BackfillState = "running"
    cursor: dict[str, Any] = field(default_factory=dict)  # the listing's position; empty: not started
    listing_done: bool = False
    total: int = 0  # conversations listed (final once ``listing_done``)
    done: int = 0  # imported: handed to the pipeline
    already_known: int = 0  # the ledger had them (a webhook or the sweep brought them in)
    errors: int = 0  # could not be read from the CRM (gone, refused)
    updated_at: int | None = None
    finished_at: int | None = None
    last_error: str | None = None

    @classmethod
    def new(cls, integration_id: str, crm: str, period_from: int, period_to: int, now: int) -> BackfillJob:
        return cls(
            integration_id=integration_id,
            backfill_id=uuid.uuid4().hex[:16],
            crm=crm,
            period_from=period_from,
            period_to=period_to,
            started_at=now,
            updated_at=now,
        )

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done - self.already_known - self.errors)

    def to_record(self) -> dict[str, Any]:
        return {
            "integration_id": self.integration_id,
            "backfill_id": self.backfill_id,
            "crm": self.crm,
            "period_from": self.period_from,
            "period_to": self.period_to,
            "started_at": self.started_at,
            "state": self.state,
            "cursor": self.cursor or None,
            "listing_done": self.listing_done,
            "total": self.total,
            "done": self.done,
            "already_known": self.already_known,
            "errors": self.errors,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "last_error": self.last_error,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BackfillJob:
        return cls(
            integration_id=str(record["integration_id"]),
            backfill_id=str(record["backfill_id"]),
            crm=str(record["crm"]),
            period_from=int(record["period_from"]),
            period_to=int(record["period_to"]),
            started_at=int(record["started_at"]),
            state=record.get("state", "running"),
            cursor=dict(record.get("cursor") or {}),
            listing_done=bool(record.get("listing_done", False)),
            total=int(record.get("total", 0)),
            done=int(record.get("done", 0)),
            already_known=int(record.get("already_known", 0)),
            errors=int(record.get("errors", 0)),
            updated_at=record.get("updated_at"),
            finished_at=record.get("finished_at"),
            last_error=record.get("last_error"),
        )

    def moved(self, **changes: Any) -> BackfillJob:
        return replace(self, **changes)

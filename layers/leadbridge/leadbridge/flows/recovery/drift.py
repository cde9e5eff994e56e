"""The drift check: chats amoCRM put into Unsorted that never became a lead here (reference A.3, "Drift detector").

Once an hour per amoCRM integration, one call to the unsorted summary counts the chats that came into Unsorted
since the last check; the leads the integration emitted meanwhile come from its status counter (no extra write on
the worker's path). More chats than leads means conversations are missing: the sweep should have found them, so
the metric has an alarm. It errs towards silence, never towards noise: a talk on an existing lead makes no Unsorted
item but may make a lead, and a backfill's leads count as emitted; so a positive drift is always worth a look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHECK_EVERY_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class DriftMark:
    at: int
    emitted: int  # the integration's emitted counter at ``at``

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> DriftMark | None:
        at, emitted = status.get("drift_mark_at"), status.get("drift_mark_emitted")
        return cls(int(at), int(emitted)) if isinstance(at, int) and isinstance(emitted, int) else None


@dataclass(frozen=True, slots=True)
class DriftReading:
    since: int
    until: int
    unsorted_chats: int
    emitted: int

    @property
    def missing(self) -> int:
        return max(0, self.unsorted_chats - self.emitted)


def due(mark: DriftMark | None, now: int) -> bool:
    return mark is None or now - mark.at >= CHECK_EVERY_SECONDS

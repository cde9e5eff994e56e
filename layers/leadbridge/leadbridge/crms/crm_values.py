"""Values out of CRM answers, read defensively: a CRM (or whatever answers in its name) can send any JSON.

Each reader returns the value in the type asked for, or None / an empty container: never an exception. Digits are
ASCII digits only (``"²".isdigit()`` is true in Python); times are range-checked, because a year-1 or year-9999 date,
or 10^15 seconds, is not when a conversation started.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK_SECONDS = 86_400  # CRM clocks run a little ahead; a day ahead is a broken value


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def dicts(value: object) -> list[dict[str, Any]]:
    """The dicts of a list (or of a PHP-style map that arrived as a JSON object)."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [item for item in items if isinstance(item, dict)]


def as_text(value: object, max_length: int = 10_000) -> str | None:
    """A non-empty string (numbers as their digits), stripped and cut to ``max_length``; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()[:max_length]
    return None


def as_id(value: object) -> str | None:
    """A positive integer id, from an int or ASCII digits; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 < value < 10**19:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and 0 < len(value) <= 19 and int(value) > 0:
        return value
    return None


def positive_int(value: object, limit: int = 10**11) -> int | None:
    """A positive count (seconds, a Unix time) from an int or ASCII digits, below ``limit``; None otherwise."""
    found = as_id(value)
    return int(found) if found is not None and int(found) < limit else None


def plausible(moment: datetime, now: float | None = None) -> datetime | None:
    """The moment in UTC when it can be a conversation's time (2000 to a day from now); None otherwise."""
    try:
        utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        return None
    latest = (now if now is not None else time.time()) + FUTURE_SLACK_SECONDS
    return utc if utc >= EARLIEST and utc.timestamp() <= latest else None


def epoch_time(value: object) -> datetime | None:
    """Unix seconds (int or ASCII digits) as a plausible UTC time; None otherwise."""
    seconds = positive_int(value)
    if seconds is None:
        return None
    try:
        return plausible(datetime.fromtimestamp(seconds, tz=UTC))
    except (OverflowError, OSError, ValueError):
        return None


def iso_time(value: object) -> datetime | None:
    """An ISO 8601 text (no offset: UTC) as a plausible UTC time; None otherwise."""
    text = as_text(value, max_length=64)
    if text is None:
        return None
    try:
        return plausible(datetime.fromisoformat(text))
    except ValueError:
        return None


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(value: Any) -> Any:
    """A CRM's parsed JSON with every lone surrogate (``"\\ud83d"`` with no pair, which JSON allows and no UTF-8
    text can hold) replaced by U+FFFD, keys included: text from a CRM is made valid where it is read, so nothing
    downstream (the lead's serialization, a queue) meets it."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value) if LONE_SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {without_lone_surrogates(k): without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_lone_surrogates(v) for v in value]
    return value

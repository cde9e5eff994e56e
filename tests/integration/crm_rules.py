"""The CRMs' own limit rules, applied to a list of instants (sends recorded by the product, or arrivals).

reference/amocrm.md §2.4: at most 7 requests per second per integration. reference/bitrix24.md: a leaky bucket of
50 requests per portal, draining 2 per second. These are the CRMs' numbers, not the product's: a limiter whose
spacing or bucket drifted from them fails here whatever it believes about itself.
"""

from __future__ import annotations

AMOCRM_PER_SECOND = 7
BITRIX24_BUCKET, BITRIX24_DRAIN_PER_SECOND = 50, 2.0


def amocrm_window_violations(instants: list[float], window: float = 1.0) -> int:
    """How many runs of 8 consecutive instants fall within ``window`` seconds (each one an 8th in a window)."""
    ordered = sorted(instants)
    n = AMOCRM_PER_SECOND
    return sum(1 for i in range(len(ordered) - n) if ordered[i + n] - ordered[i] < window)


def bitrix24_bucket_overflows(instants: list[float]) -> int:
    """How many instants find Bitrix24's bucket full."""
    level, last, overflows = 0.0, None, 0
    for at in sorted(instants):
        if last is not None:
            level = max(0.0, level - (at - last) * BITRIX24_DRAIN_PER_SECOND)
        last = at
        if level + 1 > BITRIX24_BUCKET:
            overflows += 1
        else:
            level += 1
    return overflows

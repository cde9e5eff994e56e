"""Per-integration webhook budgets in the limits table (``hooks/admission.py`` decides with them).

One item per integration and budget: ``w`` the window it counts, ``n`` what was taken in it. Taking is one
conditional write (the same window with room left), or, when the window has moved on, a second one that starts
the new window (and, when another environment started it first, the first one again); a caller that has not taken
from this window yet tries the start first. No item grows and none is left behind per window, so the table needs
no TTL for them.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from leadbridge.aws.store.dynamo import update_if


class DynamoHookBudgets:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self.writes = 0

    def take(self, key: str, window: int, count: int, cap: int, new_window: bool = False) -> bool:
        """Take ``count`` from ``key``'s budget of ``cap`` a window; False when the window has no room for it. An
        AWS failure admits (True): the budget protects the others, it is never why a delivery is lost.
        ``new_window``: the caller has not taken from this window yet, so it is likely nobody has (a burst of a
        quiet integration): starting it is tried first, one write instead of two."""
        same_window = ("ADD n :k", "w = :w AND n <= :left", window, count, cap - count)
        start_window = ("SET w = :w, n = :k", "attribute_not_exists(w) OR w < :w", window, count, 0)
        try:
            if new_window:
                # Started already (by another environment): take from it as it stands.
                return self._update(key, *start_window) or self._update(key, *same_window)
            if self._update(key, *same_window):
                return True
            if self._update(key, *start_window):
                return True
            # Another environment started this window between the two writes: take from it as it stands.
            return self._update(key, *same_window)
        except (BotoCoreError, ClientError):
            return True

    def _update(self, key: str, expression: str, condition: str, window: int, count: int, left: int) -> bool:
        values = {":w": {"N": str(window)}, ":k": {"N": str(count)}}
        if ":left" in condition:
            values[":left"] = {"N": str(left)}
        self.writes += 1
        return update_if(self.table_name, {"limit_key": {"S": key}}, expression, condition, values)

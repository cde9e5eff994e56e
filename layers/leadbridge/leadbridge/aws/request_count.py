"""The AWS requests this process sends, by ``service:Operation`` (retries included, as AWS bills them).

The layer's clients register here when they are made; the worker logs what each batch cost (``aws_requests``), so
the cost per lead is read from the requests themselves, and the local stack's request log must agree with it.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

_counts: Counter[str] = Counter()
_lock = threading.Lock()


def counted[Client](client: Client) -> Client:
    """``client`` with every request it sends counted."""
    client.meta.events.register("before-send", _count)  # type: ignore[attr-defined]
    return client


def _count(event_name: str = "", **_: Any) -> None:
    parts = [*event_name.split(".", 2), "", ""]  # before-send.<service>.<Operation>
    service, operation = parts[1].replace("-", ""), parts[2]  # secrets-manager: as its X-Amz-Target names it
    with _lock:
        _counts[f"{service}:{operation}"] += 1


def requests_so_far() -> Counter[str]:
    with _lock:
        return Counter(_counts)

"""What both fake CRMs share: a request/response shape, a clock, fault injection, counters."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeRequest:
    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class FakeResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to stall before answering (simulated timeouts)


def json_response(status: int, payload: Any, content_type: str = "application/json") -> FakeResponse:
    return FakeResponse(status, json.dumps(payload, ensure_ascii=False).encode(), {"Content-Type": content_type})


@dataclass
class Faults:
    """Random failures for fault tests: a share of requests answers with a server error, a limit or a stall."""

    ratio: float = 0.0
    seed: int = 7
    kinds: tuple[str, ...] = ("5xx", "timeout", "limit")
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - not for security

    def pick(self) -> str | None:
        if self.ratio <= 0 or self._rng.random() >= self.ratio:
            return None
        return self._rng.choice(self.kinds)


ISSUED_SECRETS: set[str] = set()
"""Every token, code and secret the fakes and the local seeding handed out: no log line may contain one."""


def remember_secret(value: str) -> str:
    if value:
        ISSUED_SECRETS.add(value)
    return value


class FakeClock:
    """Real time plus an offset that tests can advance (token expiry without waiting an hour)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class FakeCrmBase:
    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.lock = threading.RLock()
        self.counts: Counter[str] = Counter()
        self.faults = Faults()
        self.request_log: list[tuple[float, str, str]] = []

    def handle(self, request: FakeRequest) -> FakeResponse:
        raise NotImplementedError

    def count(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1

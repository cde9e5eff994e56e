"""What both fake CRMs share: a request/response shape, a clock, fault injection, counters."""

from __future__ import annotations

import bisect
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from leadbridge_local.loopback import HttpRequest, HttpResponse


def json_response(status: int, payload: Any, content_type: str = "application/json") -> HttpResponse:
    try:
        body = json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate in stored text: a PHP server escapes it (``"\ud83d"``), as JSON may
        body = json.dumps(payload).encode()
    return HttpResponse(status, body, {"Content-Type": content_type})


@dataclass
class Faults:
    """Random failures for fault tests: a share of requests answers with a server error, a limit or a stall."""

    ratio: float = 0.0
    seed: int = 7
    stall_seconds: float = 11.0  # longer than the client's default 10 s timeout
    kinds: tuple[str, ...] = ("5xx", "timeout", "limit")
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - not for security

    def pick(self) -> str | None:
        if self.ratio <= 0 or self._rng.random() >= self.ratio:
            return None
        return self._rng.choice(self.kinds)


class ArrivalWindow:
    """A CRM's "at most ``limit`` requests in any 1-second window", judged on arrival stamps.

    Stamps come from the arrival stamper's threads and reach the fake in any order, so the window is a sorted list,
    not a queue: a new arrival is refused when some 1-second window holding it would hold one more than the limit.
    """

    def __init__(self, limit: int, seconds: float = 1.0) -> None:
        self.limit = limit
        self.seconds = seconds
        self._arrivals: list[float] = []

    def admits(self, at: float) -> bool:
        arrivals = self._arrivals
        newest = max(at, arrivals[-1]) if arrivals else at
        del arrivals[: bisect.bisect_left(arrivals, newest - 4 * self.seconds)]  # long past any window
        lo = bisect.bisect_right(arrivals, at - self.seconds)  # the windows that would hold ``at`` start here
        hi = bisect.bisect_right(arrivals, at)
        for start in [at, *arrivals[lo:hi]]:
            inside = bisect.bisect_left(arrivals, start + self.seconds) - bisect.bisect_left(arrivals, start)
            if inside + 1 > self.limit:
                return False
        bisect.insort(arrivals, at)
        return True


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
        self.request_log: list[tuple[float, str, str]] = []  # (arrival, host, path), every request

    def handle(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError

    def count(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1

    def server_error(self) -> HttpResponse:
        """The CRM's answer to an internal failure."""
        raise NotImplementedError

    def limit_error(self) -> HttpResponse:
        """The CRM's answer to a request over its rate limit."""
        raise NotImplementedError

    def injected_fault(self) -> HttpResponse | None:
        """For fault tests: a server error, a stalled answer or a limit answer, for a share of the requests."""
        with self.lock:
            kind = self.faults.pick()
        if kind is not None:
            self.count(f"injected_{kind}")
        if kind == "5xx":
            return self.server_error()
        if kind == "timeout":
            return HttpResponse(504, b"", delay=self.faults.stall_seconds)
        if kind == "limit":
            response = self.limit_error()
            self.count(f"injected_{response.status}")
            return response
        return None

"""One loopback HTTP server in front of the fake CRMs, reached through the arrival stamper's process.

The code under test sends every CRM request to ``origin`` (``LEADBRIDGE_CRM_ORIGIN_OVERRIDE``) with the real host
in ``X-Original-Host``: that is the stamper (``arrivals.py``), which notes when each request arrived and passes it
on here. amojo.* hosts go to the fake amojo (the Chats API), other amoCRM and Kommo hosts to the fake amoCRM,
everything else to the fake Bitrix24 (portals can have any domain, and its OAuth server is oauth.bitrix.info /
oauth.bitrix24.tech).
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace

from leadbridge_local.fakes.arrivals import ArrivalStamper
from leadbridge_local.fakes.base import FakeCrmBase
from leadbridge_local.loopback import HttpRequest, HttpResponse, LoopbackServer

AMO_SUFFIXES = (".amocrm.ru", ".kommo.com", ".amocrm.com")


class FakeCrmServer(LoopbackServer):
    def __init__(
        self, amocrm: FakeCrmBase, bitrix24: FakeCrmBase | None = None, amojo: FakeCrmBase | None = None
    ) -> None:
        super().__init__(self.dispatch, name="fake-crm")
        self.amocrm = amocrm
        self.bitrix24 = bitrix24
        self.amojo = amojo
        self._stamper: ArrivalStamper | None = None
        # For scale runs: every answer after a random delay in [low, high] seconds (the CRMs' hosts seen from AWS);
        # hosts that answer every request with a server error, or only after the client's timeout.
        self.latency: tuple[float, float] = (0.0, 0.0)
        self.failing_hosts: set[str] = set()
        self.stalling_hosts: set[str] = set()
        self._random = random.Random(11)  # noqa: S311 - latency, not a secret
        self._random_lock = threading.Lock()

    def start(self) -> FakeCrmServer:
        super().start()
        self._stamper = ArrivalStamper(int(super().origin.rsplit(":", 1)[1])).start()
        return self

    def stop(self) -> None:
        if self._stamper is not None:
            self._stamper.stop()
        super().stop()

    @property
    def origin(self) -> str:
        """Where the code under test sends its CRM requests: the stamper in front of this server."""
        return self._stamper.origin if self._stamper is not None else super().origin

    def route(self, host: str) -> FakeCrmBase | None:
        if host.startswith("amojo.") and host.endswith(AMO_SUFFIXES):
            return self.amojo
        if host.endswith(AMO_SUFFIXES):
            return self.amocrm
        return self.bitrix24

    def dispatch(self, request: HttpRequest) -> HttpResponse:
        fake = self.route(request.host)
        if fake is None:
            return HttpResponse(502, b"no fake for host")
        with fake.lock:
            fake.request_log.append((request.arrived_at, request.host, request.path))
        if request.host in self.failing_hosts:
            fake.count("failing_host_answers")
            response = fake.server_error()
        elif request.host in self.stalling_hosts:
            fake.count("stalling_host_answers")
            response = HttpResponse(504, b"", delay=fake.faults.stall_seconds)
        else:
            response = fake.handle(request)
        low, high = self.latency
        if high > 0:
            with self._random_lock:
                extra = self._random.uniform(low, high)
            response = replace(response, delay=response.delay + extra)
        return response

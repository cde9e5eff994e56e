"""One loopback HTTP server in front of the fake CRMs.

The code under test sends every CRM request here (``LEADBRIDGE_CRM_ORIGIN_OVERRIDE``) with the real host in
``X-Original-Host``; amojo.* hosts go to the fake amojo (the Chats API), other amoCRM and Kommo hosts to the fake amoCRM, everything else to the fake Bitrix24 (portals
can have any domain, and its OAuth server is oauth.bitrix.info / oauth.bitrix24.tech).
"""

from __future__ import annotations

import time

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
            fake.request_log.append((time.time(), request.host, request.path))
        return fake.handle(request)

"""One loopback HTTP server in front of the fake CRMs.

The code under test sends every CRM request here (``LEADBRIDGE_CRM_ORIGIN_OVERRIDE``) with the real host in
``X-Original-Host``; amoCRM and Kommo hosts go to the fake amoCRM, everything else to the fake Bitrix24 (portals
can have any domain, and its OAuth server is oauth.bitrix.info / oauth.bitrix24.tech).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from leadbridge_local.fakes.base import FakeCrmBase, FakeRequest, FakeResponse

AMO_SUFFIXES = (".amocrm.ru", ".kommo.com", ".amocrm.com")


class FakeCrmServer:
    def __init__(self, amocrm: FakeCrmBase, bitrix24: FakeCrmBase | None = None) -> None:
        self.amocrm = amocrm
        self.bitrix24 = bitrix24
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-crm", daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeCrmServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def route(self, host: str) -> FakeCrmBase | None:
        if host.endswith(AMO_SUFFIXES):
            return self.amocrm
        return self.bitrix24

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                host = self.headers.get("X-Original-Host") or self.headers.get("Host") or ""
                parts = urlsplit(self.path)
                request = FakeRequest(
                    method=self.command,
                    host=host.lower(),
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                fake = outer.route(request.host)
                response = fake.handle(request) if fake else FakeResponse(502, b"no fake for host")
                if response.delay:
                    time.sleep(response.delay)
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if response.body:
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815 - stdlib naming

        return Handler

"""A threaded HTTP server on a free loopback port that hands every request to one function.

Used by the fake CRMs' front server and by the local runner's API, so both parse and answer HTTP the same way.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class HttpRequest:
    method: str
    host: str  # X-Original-Host when the caller routed through the CRM override, else Host
    path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    arrived_at: float = 0.0  # seconds since the epoch: the arrival stamper's, else when this server read it

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to stall before answering (simulated timeouts)


App = Callable[[HttpRequest], HttpResponse]


class LoopbackServer:
    def __init__(self, app: App, name: str, port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(app))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_class(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _serve(self) -> None:
            arrived_at = float(self.headers.get("X-Arrival-At") or time.time())
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            request = HttpRequest(
                method=self.command,
                host=(self.headers.get("X-Original-Host") or self.headers.get("Host") or "").lower(),
                path=parts.path,
                raw_query=parts.query,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
                arrived_at=arrived_at,
            )
            response = app(request)
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

"""The fake CRMs' front door, in a process of its own: it stamps each request's arrival, then hands it on.

The fakes live in the test process, beside the local AWS, the runner's poller and the hooks it invokes. Under CPU
load a request can wait there for the interpreter long after it arrived, and a fake that read the clock only then
would see arrivals bunch up that a CRM never would (and count limit violations the product did not commit). This
process does nothing but read a request, stamp it and pass it on, so its stamp is the arrival a CRM would see;
the fakes judge their limits by it (``X-Arrival-At``, seconds since the epoch).

Run as ``python arrivals.py <upstream port>`` (the standard library only, so any interpreter runs it): it prints its own port, serves until its
standard input closes (the parent went away), and keeps one upstream connection per client connection.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ARRIVAL_HEADER = "X-Arrival-At"
UPSTREAM_TIMEOUT_SECONDS = 120.0  # longer than any stall the fakes inject
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


def _handler(upstream_port: int) -> type[BaseHTTPRequestHandler]:
    class Stamp(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        upstream: http.client.HTTPConnection | None = None

        def log_message(self, format: str, *args: object) -> None:
            return

        def _forward(self) -> None:
            arrived_at = time.time()  # first thing: the request line and headers are in
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers[ARRIVAL_HEADER] = repr(arrived_at)
            status, answer_headers, answer = self._upstream(self.command, self.path, body, headers)
            self.send_response(status)
            for name, value in answer_headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            if answer:
                self.wfile.write(answer)

        def _upstream(
            self, method: str, path: str, body: bytes, headers: dict[str, str]
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            for attempt in (1, 2):  # a kept-alive upstream connection may have been closed meanwhile
                if self.upstream is None:
                    self.upstream = http.client.HTTPConnection(
                        "127.0.0.1", upstream_port, timeout=UPSTREAM_TIMEOUT_SECONDS
                    )
                try:
                    self.upstream.request(method, path, body=body, headers=headers)
                    response = self.upstream.getresponse()
                    return response.status, response.getheaders(), response.read()
                except (ConnectionError, http.client.HTTPException):
                    self.upstream.close()
                    self.upstream = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward  # noqa: N815 - stdlib naming

    return Stamp


def serve(upstream_port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream_port))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)  # the parent reads the port from here
    threading.Thread(target=server.serve_forever, name="arrivals", daemon=True).start()
    sys.stdin.read()  # returns when the parent closes the pipe (or dies)
    server.shutdown()


class ArrivalStamper:
    """The front process's handle in the parent: start it in front of ``upstream_port``, stop it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> ArrivalStamper:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(self.upstream_port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        return self

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._process = None


if __name__ == "__main__":
    serve(int(sys.argv[1]))

"""A fault-injecting HTTP proxy in front of the stack's real S3 server.

Everything passes through unchanged (the Host header too, so S3 signatures
still verify) until a fault is armed: then matching requests get a 500
InternalError instead of reaching the store. Used to prove what the operator
does when one write fails and the rest of the store works.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

_DROPPED = {"transfer-encoding", "connection", "keep-alive", "content-length"}

Match = Callable[[str, str], bool]
"""(method, path) -> fail this request."""


class FaultyS3:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.failed = 0
        self._match: Match | None = None
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._fails(self.command, self.path):
                    error = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _DROPPED:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

            def log_message(self, *_: object) -> None:
                pass

        # On the upstream's address (the stack bridge's gateway), so pods reach it.
        host = self.upstream.rsplit(":", 1)[0]
        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"{host}:{self._server.server_address[1]}"

    def _fails(self, method: str, path: str) -> bool:
        with self._lock:
            if self._match is not None and self._match(method, path):
                self.failed += 1
                return True
            return False

    def fail(self, match: Match) -> None:
        with self._lock:
            self._match = match

    def heal(self) -> None:
        with self._lock:
            self._match = None

    def __enter__(self) -> FaultyS3:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

"""A web server on 127.0.0.1 (a random free port, in a thread) that serves files a test built.

Tests of the download path use it in place of the internet: `serve(path, body)` publishes a file,
`serve(path, body, truncate=True)` announces the full length but closes the connection halfway.
Every request is recorded, so a test can show that offline mode sent none.
"""

from __future__ import annotations

import http.server
import threading

import pytest


class LoopbackServer:
    def __init__(self):
        self.files: dict[str, tuple[bytes, bool]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                server.requests.append(self.path)
                if path not in server.files:
                    self.send_error(404, "not here")
                    return
                body, truncate = server.files[path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if truncate else body)
                if truncate:
                    self.close_connection = True

            def log_message(self, *args):  # keep test output clean
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def serve(self, path: str, body: bytes, truncate: bool = False) -> str:
        path = "/" + path.lstrip("/")
        self.files[path] = (body, truncate)
        return self.url + path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def loopback():
    server = LoopbackServer()
    yield server
    server.close()

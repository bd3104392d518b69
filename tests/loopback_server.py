"""A web server on 127.0.0.1 (a random free port, in a thread) that serves files a test built.

Tests of the download path use it in place of the internet: `serve(path, body)` publishes a file,
`serve(path, body, truncate=True)` announces the full length but closes the connection halfway.
Every request is recorded, so a test can show that offline mode sent none. Faults for tests/test_download_faults.py:
`status=500` answers with that error, `redirect="/other"` with a 302 there, `length=N` announces N bytes whatever
the body, `stall=S` sends half the body then nothing for S seconds, `reset=True` drops the connection (TCP RST)
halfway, `chunk_delay=S` sends the body in 64 KiB pieces S seconds apart.
"""

from __future__ import annotations

import http.server
import socket
import struct
import threading
import time

import pytest


class LoopbackServer:
    def __init__(self):
        self.files: dict[str, tuple[bytes, bool]] = {}
        self.faults: dict[str, dict] = {}
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
                fault = server.faults.get(path, {})
                if fault.get("status"):
                    self.send_error(fault["status"], "fault")
                    return
                if fault.get("redirect"):
                    self.send_response(302)
                    self.send_header("Location", fault["redirect"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(fault.get("length", len(body))))
                self.end_headers()
                if fault.get("stall") or fault.get("reset"):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if fault.get("reset"):  # an abortive close: the client sees a reset, not an orderly end
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    else:
                        time.sleep(fault["stall"])
                    self.close_connection = True
                    return
                if fault.get("chunk_delay"):
                    for start in range(0, len(body), 1 << 16):
                        self.wfile.write(body[start : start + (1 << 16)])
                        self.wfile.flush()
                        time.sleep(fault["chunk_delay"])
                    return
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

    def serve(self, path: str, body: bytes, truncate: bool = False, **fault) -> str:
        path = "/" + path.lstrip("/")
        self.files[path] = (body, truncate)
        self.faults[path] = fault
        return self.url + path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def loopback():
    server = LoopbackServer()
    yield server
    server.close()

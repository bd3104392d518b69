"""TF.js in a real headless browser: Debian's Chromium, driven by Playwright for Python, loads the graph
model from a loopback HTTP server (127.0.0.1, a free port) the way a web page does, and runs it on
TF.js' WebAssembly backend (WebGL needs a GPU, which headless Chromium with --disable-gpu has not).

The browser starts once per process and is reused; the inputs and outputs cross through the same
exchange folder as the Node runner, served and written over HTTP.
"""

from __future__ import annotations

import atexit
import http.server
import os
import secrets
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from edgezoo._workspace import scratch_dir
from edgezoo.formats.base import Artifact, first_line
from edgezoo.errors import ConversionError, RuntimeFailure
from edgezoo.formats.tfjs.run_node import JS_DIR, node_modules, read_outputs, run_failure, write_inputs

RUNTIME = "tfjs-browser"
BACKEND = "wasm"
CHROMIUM = Path(os.environ.get("EDGEZOO_CHROMIUM", "/usr/bin/chromium"))
# Headless on a machine with no GPU and no network but loopback; Playwright adds a fresh --user-data-dir.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
]
TIMEOUT_SECONDS = 1800
CONTENT_TYPES = {".html": "text/html", ".mjs": "text/javascript", ".js": "text/javascript", ".json": "application/json",
                 ".wasm": "application/wasm", ".bin": "application/octet-stream"}


class LoopbackServer:
    """An HTTP server on 127.0.0.1 that serves folders under URL prefixes; writable ones also take PUT."""

    def __init__(self):
        self._mounts: dict[str, tuple[Path, bool]] = {}
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def mount(self, prefix: str, folder: Path, writable: bool = False) -> None:
        with self._lock:
            self._mounts[prefix] = (folder.resolve(), writable)

    def unmount(self, prefix: str) -> None:
        with self._lock:
            self._mounts.pop(prefix, None)

    def resolve(self, url_path: str, writing: bool) -> Path | None:
        """The file a URL names, or None if no mount holds it, or it would leave the mounted folder,
        or it is a write anywhere but directly inside a writable folder."""
        with self._lock:
            mounts = dict(self._mounts)
        for prefix, (folder, writable) in mounts.items():
            if url_path.startswith(prefix):
                path = (folder / url_path[len(prefix):]).resolve()
                allowed = path.parent == folder and writable if writing else path.is_relative_to(folder)
                return path if allowed and path != folder else None
        return None

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler_class(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = server.resolve(unquote(self.path.split("?")[0]), writing=False)
                if path is None or not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")  # a tampered or rebuilt model must be fetched anew
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                path = server.resolve(unquote(self.path.split("?")[0]), writing=True)
                if path is None:
                    self.send_error(403)
                    return
                path.write_bytes(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format, *args):  # quiet: failures surface through the page
                pass

        return Handler


class BrowserSession:
    """One headless Chromium and one loopback server, for any number of runs."""

    def __init__(self, executable: Path = CHROMIUM, backend: str = BACKEND):
        modules = node_modules()
        if not executable.exists():
            raise ConversionError(
                f"Chromium is not installed at {executable}; the browser runner uses Debian's chromium. "
                "Run `make install` (apt-get install chromium), or set EDGEZOO_CHROMIUM to a Chromium binary."
            )
        from playwright.sync_api import Error as PlaywrightError, sync_playwright

        self.backend = backend
        self.server = LoopbackServer()
        self.server.mount("/harness/", JS_DIR)
        self.server.mount("/tfjs/", modules / "@tensorflow" / "tfjs" / "dist")
        self.server.mount("/tfjs-backend-wasm/", modules / "@tensorflow" / "tfjs-backend-wasm" / "dist")
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_FLAGS)
        except PlaywrightError as exc:
            self._playwright.stop()
            self.server.close()
            raise ConversionError(f"Chromium at {executable} did not start: {first_line(exc)}") from exc
        self.browser_version = self._browser.version
        self.last_backend: str | None = None  # the TF.js backend that ran the last model

    def run(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from playwright.sync_api import Error as PlaywrightError

        token = secrets.token_hex(8)
        model_prefix, exchange_prefix = f"/runs/{token}/model/", f"/runs/{token}/exchange/"
        exchange = scratch_dir("tfjs-browser-")
        page = self._browser.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.on("console", lambda message: page_errors.append(message.text) if message.type == "error" else None)
        try:
            write_inputs(exchange, inputs)
            self.server.mount(model_prefix, artifact.path.parent)
            self.server.mount(exchange_prefix, exchange, writable=True)
            page.goto(f"{self.server.origin}/harness/index.html")
            page.wait_for_function("window.edgezooReady === true", timeout=60_000)
            outcome = page.evaluate(
                """([model, exchange, backend, seconds]) => Promise.race([
                    window.edgezooRun(model, exchange, backend),
                    new Promise((_, reject) => setTimeout(() => reject(new Error(`no result after ${seconds} s`)), seconds * 1000)),
                ])""",
                [model_prefix + artifact.path.name, exchange_prefix, self.backend, TIMEOUT_SECONDS],
            )
            self.last_backend = outcome["backend"]
            return read_outputs(exchange)
        except PlaywrightError as exc:
            logged = "; ".join(dict.fromkeys(page_errors))[:2000]
            raise run_failure(artifact, f"TF.js ({self.backend}) in Chromium", first_line(exc).removeprefix("Page.evaluate: ")
                              + (f"\nThe page reported: {logged}" if logged else "")) from exc
        finally:
            page.close()
            self.server.unmount(model_prefix)
            self.server.unmount(exchange_prefix)
            shutil.rmtree(exchange, ignore_errors=True)

    def close(self) -> None:
        self._browser.close()
        self._playwright.stop()
        self.server.close()


_SHARED: BrowserSession | None = None


def shared_session() -> BrowserSession:
    """The process' browser, started on first use and closed when the process exits."""
    global _SHARED
    if _SHARED is None:
        _SHARED = BrowserSession()
        atexit.register(close_shared_session)
    return _SHARED


def forget_shared_session() -> None:
    """Drop the process' browser without closing it (its processes are being stopped from outside: an interrupt)."""
    global _SHARED
    _SHARED = None


def close_shared_session() -> None:
    global _SHARED
    if _SHARED is not None:
        session, _SHARED = _SHARED, None
        session.close()


def run(artifact: Artifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return shared_session().run(artifact, inputs)

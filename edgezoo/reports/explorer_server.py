"""Model Explorer's server for one artifact and its overlays, in a child process on 127.0.0.1 (`edgezoo explore`).

The page opens the artifact with the adapter the overlays' node ids come from (edgezoo/reports/explorer.py knows it per
format) and loads that adapter's extension module, when it is not built in (model_explorer_onnx for .onnx).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from edgezoo.errors import RuntimeFailure, UsageError

HEALTH_TIMEOUT_SECONDS = 60


class ExplorerServer:
    """Model Explorer's server for one artifact and its overlays, in a child process on 127.0.0.1.

    The child's HTTP(S) proxy is a closed loopback port (loopback itself excepted): Model Explorer's server asks PyPI and
    GitHub for a newer release at start and whenever the page asks; with the proxy those requests fail at once and
    nothing leaves the machine. The page itself loads everything from this server but Google Sans web fonts, which the
    page falls back from (a browser that must stay offline blocks them, as the tests do)."""

    def __init__(self, artifact: str | Path, node_data: list[Path], port: int | None = None, host: str = "127.0.0.1"):
        from edgezoo.reports import explorer

        self.artifact = Path(artifact).resolve()
        self.node_data = [Path(p).resolve() for p in node_data]
        module = explorer.format_module(self.artifact)  # UsageError for a format with no adapter
        self.adapter_id, self.extensions = module.ADAPTER_ID, tuple(module.EXTENSIONS)
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile(mode="w+")

    @property
    def url(self) -> str:
        """The page with the model and its overlays loaded (the same address Model Explorer prints)."""
        return f"http://{self.host}:{self.port}/?data={_config(self.artifact, self.adapter_id, self.node_data).to_url_param_value()}"

    def start(self) -> "ExplorerServer":
        env = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"}
        env.update({k.lower(): env[k] for k in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")})
        command = [sys.executable, "-m", "edgezoo.reports.explorer_server", str(self.artifact), "--host", self.host,
                   "--port", str(self.port), "--adapter", self.adapter_id,
                   *[arg for name in self.extensions for arg in ("--extension", name)],
                   *[arg for p in self.node_data for arg in ("--node-data", str(p))]]
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL)
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, past any proxy in our env
        deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.close()
                output = self.output()
                if "already in use" in output:
                    raise UsageError(f"port {self.port} is already in use: give another with --port.")
                raise RuntimeFailure(f"Model Explorer's server stopped at start (exit {self._process.returncode}): "
                                     f"{output.strip()[-800:]}")
            try:
                with opener.open(f"http://{self.host}:{self.port}/check_health", timeout=2) as answer:
                    if answer.read() == b"model_explorer_ok":
                        return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeFailure(f"Model Explorer's server did not answer on {self.host}:{self.port} within "
                             f"{HEALTH_TIMEOUT_SECONDS} s: {self.output().strip()[-800:]}")

    def wait(self) -> int:
        return self._process.wait() if self._process else 0

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> "ExplorerServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
        self._log.close()


def _config(artifact: Path, adapter_id: str, node_data: list[Path]):
    """What the page opens: the model, read by the adapter the overlays' node ids come from, and the node-data files."""
    import model_explorer

    config = model_explorer.config()
    config.add_model_from_path(str(artifact), adapterId=adapter_id)
    for path in node_data:
        config.add_node_data_from_path(str(path))
    return config


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _serve(argv: list[str]) -> None:
    """The child: Model Explorer's server in the foreground, never opening a browser itself."""
    import argparse

    import model_explorer

    parser = argparse.ArgumentParser(prog="python -m edgezoo.reports.explorer_server")
    parser.add_argument("artifact")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--extension", action="append", default=[])
    parser.add_argument("--node-data", action="append", default=[])
    args = parser.parse_args(argv)
    config = _config(Path(args.artifact), args.adapter, [Path(p) for p in args.node_data])
    model_explorer.visualize_from_config(config, host=args.host, port=args.port, extensions=args.extension,
                                         no_open_in_browser=True)


if __name__ == "__main__":
    _serve(sys.argv[1:])

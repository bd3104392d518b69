"""Model Explorer overlays: per-op facts from a report, as node-data files Google's Model Explorer (ai-edge-model-explorer)
draws on the artifact's graph, and a Model Explorer server on 127.0.0.1 that opens the artifact with them.

Node data is written with Model Explorer's own node_data_builder, one file per overlay, in `explorer/` beside the
artifact: each op's precision (read back from the file), the quantisation SNR at each op's output and with only that op
in int8 (report["quantization_trace"], when measured), and for every backend in report["placement"] the one that takes
each op (or why it does not). edgezoo measures no per-op latency (bench times the whole model), so there is no latency overlay.

How nodes are identified: the .tflite flatbuffer adapter (ai_edge_model_explorer_adapter) names each op node of the main
subgraph by its operator index ("0", "1", ...; constants and the graph's inputs and outputs get the numbers after the
last op). Overlays are keyed by that index, which is also the index of report["placement"] ops, and the server is told
to use that adapter, so the numbering cannot change under them. Model Explorer 0.1.34 has no adapter for ONNX (the
separate model-explorer-onnx extension is not in the lock) nor for TF.js' model.json: those artifacts get no overlays.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edgezoo.errors import CorruptModelError, RuntimeFailure, UsageError
from edgezoo.validate.metrics import SNR_CAP_DB

FOLDER = "explorer"  # beside the artifact: <out>/<model>/<target>/explorer/*.json
ADAPTERS = {"tflite": "builtin_tflite_flatbuffer"}  # format -> the Model Explorer adapter whose node ids the overlays use
INSTALL_HINT = "install edgezoo's explorer extra: pip install -c requirements/lock.txt -e '.[explorer]'"
PRECISION_COLOURS = {"int8": "#a5d6a7", "int16": "#80cbc4", "dynamic-int8": "#fff59d", "float32": "#ffab91",
                     "float16": "#ffcc80", "conversion": "#ce93d8", "index": "#e0e0e0"}
ACCEPTED_COLOUR, REJECTED_COLOUR = "#a5d6a7", "#ef9a9a"
# SNR in dB means the same on every model (scale-free), so fixed bands rather than a gradient over this model's range.
SNR_BANDS = ((20, "#ef5350"), (30, "#ffa726"), (40, "#ffee58"), (1000, "#66bb6a"))
HEALTH_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Op:
    node_id: str  # the node's id in Model Explorer's graph: the operator's index in the main subgraph
    op: str  # CONV_2D
    output: str  # its first output tensor's name
    layer: str
    precision: str


def artifact_ops(artifact: str | Path) -> tuple[Op, ...]:
    """The main subgraph's ops as Model Explorer numbers them, with the precision each computes in (from the file)."""
    from edgezoo.formats import tflite

    data = Path(artifact).read_bytes()
    nodes = tflite.read_flatbuffer(data).ops
    precisions = tflite.op_precisions(data)  # one per op, in read_flatbuffer's order
    return tuple(Op(str(node.index), node.op, p.output, p.layer, p.precision)
                 for node, p in zip(nodes, precisions) if node.subgraph == 0)


def write_node_data(folder: str | Path, report: dict, artifact) -> list[Path]:
    """Node-data files (one per overlay) for the artifact in `folder`, from what the report holds. Nothing for a format
    Model Explorer cannot load. `artifact` is an Artifact or the artifact file's path."""
    path = Path(getattr(artifact, "path", artifact))
    if report.get("format", artifact_format(path)) not in ADAPTERS:
        return []
    builder = _builder()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, data in overlays(report, artifact_ops(path), builder).items():
        target = folder / f"{stem}.json"
        target.write_text(data.to_json_string(indent=2) + "\n", encoding="utf-8")
        written.append(target)
    return written


def overlays(report: dict, ops: tuple[Op, ...], builder=None) -> dict:
    """File stem -> GraphNodeData. A single graph's node data: Model Explorer applies it to the graph it shows first,
    the main subgraph."""
    nd = builder or _builder()
    found = {"precision": nd.GraphNodeData(
        name="precision", hideInAggregatedStatsTable=True, showExpandedSummaryOnGroupNode=True,
        results={op.node_id: nd.NodeDataResult(value=op.precision, bgColor=PRECISION_COLOURS.get(op.precision, "#ffffff"))
                 for op in ops})}
    layers = (report.get("quantization_trace") or {}).get("layers") or []
    # The trace measures the plain int8 model (every op int8), also when the artifact keeps some layers in float: said.
    for key, stem, name in (("snr_db", "quantization-snr", "int8 SNR at the op's output, every op int8 (dB)"),
                            ("solo_snr_db", "quantization-solo-snr", "int8 SNR with only this op int8 (dB)")):
        results = {node_id: nd.NodeDataResult(value=round(float(value), 2))
                   for node_id, value in _trace_values(layers, ops, key).items() if value < SNR_CAP_DB}  # the cap: no error added, nothing to colour
        if results:
            found[stem] = nd.GraphNodeData(name=name, results=results,
                                           thresholds=[nd.ThresholdItem(value=v, bgColor=c) for v, c in SNR_BANDS])
    known = {op.node_id for op in ops}
    section = report.get("placement") or {}  # {"placed_for", "backends": [Placement.to_json()]}, or "unavailable"
    for placement in section.get("backends", []) if isinstance(section, dict) else section:
        results = {str(row["index"]): nd.NodeDataResult(value=row["placed_on"] if row.get("accepted") else
                                                        f"{row['placed_on']}: {row.get('reason') or 'rejected'}",
                                                        bgColor=ACCEPTED_COLOUR if row.get("accepted") else REJECTED_COLOUR)
                   for row in placement.get("ops", []) if str(row.get("index")) in known}
        if results:
            found[f"placement-{_slug(placement['backend'])}"] = nd.GraphNodeData(
                name=f"placement: {placement['backend']}", results=results, hideInAggregatedStatsTable=True,
                showExpandedSummaryOnGroupNode=True)
    return found


def _trace_values(layers: list[dict], ops: tuple[Op, ...], key: str) -> dict[str, float]:
    """The trace's per-op figures by node id. The trace names tensors of the float model it calibrated; they equal the
    artifact's output names for a full-integer model, else the layer and op type find the op when that pair is unique."""
    by_output = {op.output: op for op in ops}
    by_layer: dict[tuple[str, str], list[Op]] = {}
    for op in ops:
        by_layer.setdefault((op.layer, op.op), []).append(op)
    values = {}
    for row in layers:
        if row.get(key) is None:
            continue
        op = by_output.get(row.get("output", ""))
        candidates = by_layer.get((row.get("layer", ""), row.get("op", "")), [])
        op = op or (candidates[0] if len(candidates) == 1 else None)
        if op is not None:
            values[op.node_id] = float(row[key])
    return values


def graph_nodes(artifact: str | Path) -> dict[str, str]:
    """Node id -> label of the main graph, as Model Explorer's adapter builds it (the ids the page matches overlays to)."""
    path = Path(artifact)
    adapter_id = ADAPTERS.get(artifact_format(path))
    if adapter_id is None:
        raise UsageError(unsupported(path))
    _builder()  # the install hint, when the extra is missing
    from model_explorer.builtin_tflite_flatbuffer_adapter import BuiltinTfliteFlatbufferAdapter
    from model_explorer.utils import convert_adapter_response

    try:
        graphs = convert_adapter_response(BuiltinTfliteFlatbufferAdapter().convert(str(path), {}))
    except Exception as exc:  # the adapter's C++ parser raises RuntimeError (and others) on a damaged file
        raise CorruptModelError(f"Model Explorer cannot read '{path}': {type(exc).__name__}: {exc}") from exc
    main = graphs["graphCollections"][0]["graphs"][0]
    return {node["id"]: node["label"] for node in main["nodes"]}


def check_node_data(path: str | Path, nodes: dict[str, str]) -> int:
    """How many of a node-data file's entries land on a node of the graph; UsageError when some name no node (a broken
    overlay would show nothing, silently)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    keys = set(data.get("results", {}))
    missing = sorted(keys - set(nodes))
    if missing or not keys:
        raise UsageError(f"node data '{path}' does not fit the graph: {len(missing)} of {len(keys)} node ids match no node "
                         f"(first: {missing[:5]}). Rewrite it from the report (delete the folder and run again).")
    return len(keys)


def node_data_paths(artifact: str | Path) -> list[Path]:
    """The node-data files beside an artifact; made from the report.json beside it when there are none yet."""
    path = Path(artifact)
    folder = path.parent / FOLDER
    existing = sorted(folder.glob("*.json"))
    if existing:
        return existing
    report_path = path.parent / "report.json"
    if not report_path.is_file():
        return []
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return write_node_data(folder, report, path)


def unsupported(path: Path) -> str:
    return (f"'{path}': Model Explorer {_version()} has no adapter for {artifact_format(path) or 'this kind of file'} here; "
            "it opens .tflite artifacts (ONNX needs the separate model-explorer-onnx extension, TF.js' model.json none).")


class ExplorerServer:
    """Model Explorer's server for one artifact and its overlays, in a child process on 127.0.0.1.

    The child's HTTP(S) proxy is a closed loopback port (loopback itself excepted): Model Explorer's server asks PyPI and
    GitHub for a newer release at start and whenever the page asks; with the proxy those requests fail at once and
    nothing leaves the machine. The page itself loads everything from this server but Google Sans web fonts, which the
    page falls back from (a browser that must stay offline blocks them, as the tests do)."""

    def __init__(self, artifact: str | Path, node_data: list[Path], port: int | None = None, host: str = "127.0.0.1"):
        self.artifact = Path(artifact).resolve()
        self.node_data = [Path(p).resolve() for p in node_data]
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile(mode="w+")

    @property
    def url(self) -> str:
        """The page with the model and its overlays loaded (the same address Model Explorer prints)."""
        return f"http://{self.host}:{self.port}/?data={_config(self.artifact, self.node_data).to_url_param_value()}"

    def start(self) -> "ExplorerServer":
        env = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"}
        env.update({k.lower(): env[k] for k in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")})
        command = [sys.executable, "-m", "edgezoo.reports.explorer", str(self.artifact), "--host", self.host,
                   "--port", str(self.port), *[arg for p in self.node_data for arg in ("--node-data", str(p))]]
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


def _config(artifact: Path, node_data: list[Path]):
    """What the page opens: the model, read by the adapter the overlays' node ids come from, and the node-data files."""
    import model_explorer

    config = model_explorer.config()
    config.add_model_from_path(str(artifact), adapterId=ADAPTERS[artifact_format(artifact)])
    for path in node_data:
        config.add_node_data_from_path(str(path))
    return config


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _builder():
    try:
        from model_explorer import node_data_builder
    except ImportError as exc:
        raise UsageError(f"Model Explorer is not installed ({exc}): {INSTALL_HINT}.") from None
    return node_data_builder


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ai-edge-model-explorer")
    except Exception:  # noqa: BLE001 - only words for a message
        return ""


def artifact_format(path: Path) -> str:
    return {".tflite": "tflite", ".onnx": "onnx", ".json": "tfjs"}.get(Path(path).suffix.lower(), "")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "backend"


def _serve(argv: list[str]) -> None:
    """The child: Model Explorer's server in the foreground, never opening a browser itself."""
    import argparse

    import model_explorer

    parser = argparse.ArgumentParser(prog="python -m edgezoo.reports.explorer")
    parser.add_argument("artifact")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--node-data", action="append", default=[])
    args = parser.parse_args(argv)
    config = _config(Path(args.artifact), [Path(p) for p in args.node_data])
    model_explorer.visualize_from_config(config, host=args.host, port=args.port, no_open_in_browser=True)


if __name__ == "__main__":
    _serve(sys.argv[1:])

"""Model Explorer overlays: per-op facts from a report, as node-data files Google's Model Explorer (ai-edge-model-explorer)
draws on the artifact's graph; `edgezoo explore` serves them (edgezoo/reports/explorer_server.py).

Node data is written with Model Explorer's own node_data_builder, one file per overlay, in `explorer/` beside the
artifact: each op's precision (read back from the file), the quantisation SNR at each op's output and with only that op
in int8 (report["quantization_trace"], when measured), for every backend in report["placement"] the one that takes
each op (or why it does not), and each op's latency where a runtime measures it per op (ONNX Runtime's profiler, on
this host's CPU: `op_latency`; no TFLite runtime installed exposes per-op times to Python).

How nodes are identified is each format's own: edgezoo/formats/<format>/explorer.py names the Model Explorer adapter
(ADAPTER_ID, and the EXTENSIONS module that registers it) and lists the main graph's ops with that adapter's node ids
(`ops`). TFLite: the flatbuffer adapter's operator index; ONNX: model-explorer-onnx's node name. The server is told to
use that adapter, so the ids cannot change under the overlays. TF.js' model.json has no adapter: no overlays.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from edgezoo.errors import CorruptModelError, UsageError
from edgezoo.formats import part
from edgezoo.reports.explorer_server import ExplorerServer, free_port  # noqa: F401 - the names `edgezoo explore` and tests use
from edgezoo.validate.metrics import SNR_CAP_DB

FOLDER = "explorer"  # beside the artifact: <out>/<model>/<target>/explorer/*.json
FORMATS = ("tflite", "onnx")  # the formats with a formats/<format>/explorer.py
ADAPTERS = {name: part(name, "explorer").ADAPTER_ID for name in FORMATS}  # format -> the adapter whose node ids the overlays use
INSTALL_HINT = "install edgezoo's explorer extra: pip install -c requirements/lock.txt -e '.[explorer]'"
PRECISION_COLOURS = {"int8": "#a5d6a7", "int16": "#80cbc4", "dynamic-int8": "#fff59d", "float32": "#ffab91",
                     "float16": "#ffcc80", "conversion": "#ce93d8", "index": "#e0e0e0"}
ACCEPTED_COLOUR, REJECTED_COLOUR = "#a5d6a7", "#ef9a9a"
# SNR in dB means the same on every model (scale-free), so fixed bands rather than a gradient over this model's range.
SNR_BANDS = ((20, "#ef5350"), (30, "#ffa726"), (40, "#ffee58"), (1000, "#66bb6a"))
# Per-op time: a gradient over this model's own range (absolute µs differ from machine to machine anyway).
LATENCY_GRADIENT = ((0.0, "#e3f2fd"), (0.5, "#64b5f6"), (1.0, "#0d47a1"))


@dataclass(frozen=True)
class Op:
    index: int  # the op's position in the file (main subgraph / graph.node): the index of report["placement"] ops
    node_id: str  # the node's id in Model Explorer's graph, as the format's adapter names it
    op: str  # CONV_2D, Conv
    output: str  # its first output tensor's name
    layer: str
    precision: str


def format_module(artifact: str | Path):
    """The format's explorer module (ADAPTER_ID, EXTENSIONS, ops, adapter); UsageError for a format with no adapter."""
    name = artifact_format(Path(artifact))
    if name not in FORMATS:
        raise UsageError(unsupported(Path(artifact)))
    return part(name, "explorer")


def artifact_ops(artifact: str | Path) -> tuple[Op, ...]:
    """The main graph's ops, with the node ids Model Explorer's adapter gives them and the precision each computes in."""
    return tuple(Op(**row) for row in format_module(artifact).ops(artifact))


def write_node_data(folder: str | Path, report: dict, artifact, latency: dict[int, float] | None = None) -> list[Path]:
    """Node-data files (one per overlay) for the artifact in `folder`, from what the report holds and the per-op latency
    (op index -> µs, `op_latency`) when measured. Nothing for a format Model Explorer cannot load. `artifact` is an
    Artifact or the artifact file's path."""
    path = Path(getattr(artifact, "path", artifact))
    if report.get("format", artifact_format(path)) not in FORMATS:
        return []
    builder = _builder()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    module = format_module(path)
    ops = artifact_ops(path)
    found = overlays(report, ops, builder)
    if latency:  # named by the format's module: the runtime that measured it, and how
        found.update(latency_overlay(latency, ops, *module.LATENCY_OVERLAY, builder=builder))
    for stem, data in found.items():
        target = folder / f"{stem}.json"
        target.write_text(data.to_json_string(indent=2) + "\n", encoding="utf-8")
        written.append(target)
    return written


def op_latency(artifact, golden) -> dict[int, float] | None:
    """Each op's time in µs (op index -> median), measured on one sample of the golden set where the format's runtime
    profiles per op (ONNX Runtime); None elsewhere, and when Model Explorer, which would draw it, is not installed."""
    path = Path(getattr(artifact, "path", artifact))
    if artifact_format(path) not in FORMATS:
        return None
    module = format_module(path)
    if not hasattr(module, "latency"):
        return None
    try:
        _builder()
    except UsageError:
        return None
    inputs = {golden.input_names.get(name, name): array[:1] for name, array in golden.inputs.items()}
    return module.latency(path, inputs)


def latency_overlay(latency: dict[int, float], ops: tuple[Op, ...], stem: str, name: str, builder=None) -> dict:
    """File stem -> GraphNodeData of each op's time in µs, coloured along this model's own range."""
    nd = builder or _builder()
    by_index = {op.index: op.node_id for op in ops}
    results = {by_index[i]: nd.NodeDataResult(value=round(float(us), 1)) for i, us in latency.items() if i in by_index}
    if not results:
        return {}
    return {stem: nd.GraphNodeData(name=name, results=results,
                                   gradient=[nd.GradientItem(stop=s, bgColor=c) for s, c in LATENCY_GRADIENT])}


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
    by_index = {op.index: op.node_id for op in ops}  # placement rows are in file order, as the ops
    section = report.get("placement") or {}  # {"placed_for", "backends": [Placement.to_json()]}, or "unavailable"
    for placement in section.get("backends", []) if isinstance(section, dict) else section:
        results = {by_index[row["index"]]: nd.NodeDataResult(value=row["placed_on"] if row.get("accepted") else
                                                        f"{row['placed_on']}: {row.get('reason') or 'rejected'}",
                                                        bgColor=ACCEPTED_COLOUR if row.get("accepted") else REJECTED_COLOUR)
                   for row in placement.get("ops", []) if row.get("index") in by_index}
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
    module = format_module(path)
    _builder()  # the install hint, when the extra is missing
    from model_explorer.utils import convert_adapter_response

    try:
        graphs = convert_adapter_response(module.adapter().convert(str(path), {}))
    except ImportError as exc:
        raise UsageError(f"Model Explorer's adapter for {artifact_format(path)} is not installed ({exc}): {INSTALL_HINT}.") from None
    except Exception as exc:  # the adapters' parsers raise RuntimeError, DecodeError (and others) on a damaged file
        raise CorruptModelError(f"Model Explorer cannot read '{path}': {type(exc).__name__}: {exc}") from exc
    main = graphs["graphCollections"][0]["graphs"][0] if "graphCollections" in graphs else graphs["graphs"][0]
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
            "it opens .tflite and .onnx artifacts (TF.js' model.json has none).")


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

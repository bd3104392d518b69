"""Model Explorer overlays for ONNX: node data from a real int8 ONNX conversion lands on the nodes model-explorer-onnx's
own adapter builds, ONNX Runtime's per-node latency covers the graph, and the page draws it in headless Chromium."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgezoo.errors import UsageError
from edgezoo.reports import explorer
from tests.test_explorer import drawn_pixels, open_page


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    """digits-cnn for the onnx target in int8 (QDQ: int8 ops between QuantizeLinear/DequantizeLinear): a target folder."""
    import edgezoo
    from edgezoo.formats.base import Quantization

    out = tmp_path_factory.mktemp("explorer-onnx")
    result = edgezoo.convert("digits-cnn", target="onnx", out_dir=out, quantize=Quantization.INT8)
    assert result.passed
    return out / "digits-cnn" / "onnx"


def test_onnx_overlays_land_on_the_adapters_nodes(target, tmp_path):
    folder = target / explorer.FOLDER
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "latency-onnxruntime-cpu.json", "placement-onnx-runtime.json", "precision.json"]  # no SNR: not traced for ONNX
    nodes = explorer.graph_nodes(target / "model.onnx")
    ops = explorer.artifact_ops(target / "model.onnx")
    # The adapter ids each node by its name and labels it with its op type: each of our ids is that node.
    assert [nodes[op.node_id] for op in ops] == [node.op_type for node in onnx.load(str(target / "model.onnx")).graph.node]
    for path in folder.glob("*.json"):
        assert explorer.check_node_data(path, nodes) == len(ops)

    precision = json.loads((folder / "precision.json").read_text())["results"]
    by_op = {}
    for op in ops:
        by_op.setdefault(op.op, set()).add(precision[op.node_id]["value"])
    assert by_op["Conv"] == {"int8"} and by_op["Gemm"] == {"int8"}  # between DequantizeLinear and QuantizeLinear
    assert by_op["QuantizeLinear"] == by_op["DequantizeLinear"] == {"conversion"}
    assert precision[ops[0].node_id]["bgColor"] == explorer.PRECISION_COLOURS["conversion"]

    # ONNX Runtime's profiler timed every node (graph optimisations off: the file's own nodes), each a positive median.
    latency = json.loads((folder / "latency-onnxruntime-cpu.json").read_text())
    assert "not the device" in latency["name"] and "noisy" in latency["name"]
    assert set(latency["results"]) == {op.node_id for op in ops}
    assert all(row["value"] > 0 for row in latency["results"].values())

    # A broken overlay (a node name the graph does not have) is caught, not silently drawn as nothing.
    broken = tmp_path / "broken.json"
    data = json.loads((folder / "precision.json").read_text())
    data["results"] = {f"{k}_gone": v for k, v in data["results"].items()}
    broken.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="match no node"):
        explorer.check_node_data(broken, nodes)


def test_unnamed_and_duplicate_nodes_get_the_adapters_ids(tmp_path):
    """Hand-built graphs with unnamed nodes and a repeated name: the adapter names them; our ids follow it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    for names in (("", "neg", "", ""), ("", "same", "same", "")):  # ONNX Runtime loads only the first (unique names)
        graph = helper.make_graph([helper.make_node(op, [i], [o], name=name) for op, i, o, name in
                                   zip(("Relu", "Neg", "Abs", "Sigmoid"), "xabc", ("a", "b", "c", "y"), names)], "tiny", [x], [y])
        path = tmp_path / f"model-{len(set(names))}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        nodes = explorer.graph_nodes(path)
        ops = explorer.artifact_ops(path)
        assert [nodes[op.node_id] for op in ops] == ["Relu", "Neg", "Abs", "Sigmoid"]
        assert len({op.node_id for op in ops}) == 4 and {op.precision for op in ops} == {"float32"}
        if "same" not in names:
            latency = explorer.op_latency(path, _Golden({"x": np.ones((3, 4), np.float32)}))
            assert sorted(latency) == [0, 1, 2, 3] and min(latency.values()) > 0
            (written,) = [p for p in explorer.write_node_data(tmp_path / "nd", {"format": "onnx"}, path, latency=latency)
                          if p.stem == "latency-onnxruntime-cpu"]
            assert explorer.check_node_data(written, nodes) == 4


def test_a_failing_latency_measurement_leaves_the_target_and_the_other_overlays(tmp_path, monkeypatch):
    import edgezoo
    from edgezoo import diagnostics as diag

    def boom(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr("edgezoo.formats.onnx.explorer.latency", boom)
    (result,) = edgezoo.convert("digits-cnn", target="onnx", out_dir=tmp_path).targets
    assert result.passed
    report = json.loads((result.output_dir / "report.json").read_text())
    assert {row["name"]: row["error"] for row in report["diagnostics"]["unavailable"]} == {
        diag.LATENCY: "RuntimeError: injected failure"}
    assert sorted(p.stem for p in (result.output_dir / explorer.FOLDER).glob("*.json")) == ["placement-onnx-runtime", "precision"]


def test_model_explorer_draws_the_onnx_overlay_in_chromium(target, tmp_path):
    start = time.monotonic()
    screenshot = tmp_path / "model-explorer-onnx.png"
    with explorer.ExplorerServer(target / "model.onnx", [target / explorer.FOLDER / "precision.json"]) as server:
        assert server.adapter_id == "onnx_adapter" and server.extensions == ("model_explorer_onnx",)
        rows, blocked = open_page(server, screenshot, height=2000)  # 75 nodes (QDQ pairs, initializers): room to draw them
    print(f"Model Explorer (ONNX) screenshot: {screenshot} ({time.monotonic() - start:.1f} s); blocked: {sorted(set(blocked))}")

    assert all(url.startswith("https://fonts.gstatic.com/") for url in blocked), blocked
    shown = {(row[1][0], row[2][0]): row[2][1] for row in rows if len(row) == 3}
    assert shown[("Conv", "int8")] == _css(explorer.PRECISION_COLOURS["int8"])
    assert shown[("QuantizeLinear", "conversion")] == _css(explorer.PRECISION_COLOURS["conversion"])
    for kind in ("int8", "conversion"):
        assert drawn_pixels(screenshot, explorer.PRECISION_COLOURS[kind]) > 300, f"no {kind} node drawn in {screenshot}"


class _Golden:
    """The two fields op_latency reads of a GoldenSet: inputs by name, and the artifact's names where they differ."""

    def __init__(self, inputs: dict[str, np.ndarray]):
        self.inputs, self.input_names = inputs, {}


def _css(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"

"""int8 and dynamic-int8 ONNX (ONNX Runtime's quantiser), checked on ONNX Runtime against the original, on a corpus CNN."""

from __future__ import annotations

import numpy as np
import pytest

from tests import corpus

MODEL = "tiny-mobilenet"  # depthwise and 1x1 convolutions, batch norm folded, a softmax head


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx-int8")
    return {q: corpus.convert_cell(MODEL, "onnx", out / q, quantize=q) for q in ("float32", "int8", "dynamic-int8")}


def _graph(path):
    import onnx

    return onnx.load(str(path)).graph


def _weight_bytes(path) -> int:
    """Bytes of the stored weights. (The whole file of so tiny a model grows: each QuantizeLinear/DequantizeLinear pair
    carries tf2onnx's long tensor names, 31 KB of names against 6 KB of weights here.)"""
    return sum(len(t.raw_data) + 4 * len(t.float_data) for t in _graph(path).initializer)


def test_static_int8_onnx_is_qdq_per_channel_and_passes_on_onnxruntime(cells):
    import onnx
    from onnx import numpy_helper

    cell, done = cells["int8"]
    float32 = cells["float32"][0]
    assert cell.verdict == "pass", cell.reason
    assert done.artifact.quantization.value == "int8" and done.parity.runtime == "onnxruntime"
    assert _weight_bytes(done.artifact.path) < 0.6 * _weight_bytes(cells["float32"][1].artifact.path)
    graph = _graph(done.artifact.path)
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert int8_weights  # convolution weights stored as int8
    per_channel = [node for node in graph.node if node.op_type == "DequantizeLinear" and node.input[0] in {t.name for t in int8_weights}
                   and initializers[node.input[1]].size > 1]
    assert per_channel  # a scale per output channel
    assert cell.worst_snr_db < float32.worst_snr_db  # really quantised


def test_dynamic_int8_onnx_passes_on_onnxruntime(cells):
    cell, done = cells["dynamic-int8"]
    assert cell.verdict == "pass", cell.reason
    ops = {node.op_type for node in _graph(done.artifact.path).node}
    assert ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}, ops
    assert _weight_bytes(done.artifact.path) < 0.6 * _weight_bytes(cells["float32"][1].artifact.path)


def test_a_broken_int8_onnx_model_fails_parity(cells, tmp_path):
    """The check can fail: one convolution's int8 weights negated."""
    import onnx
    from onnx import numpy_helper

    from edgezoo.formats.base import Artifact
    from edgezoo.targets import resolve_profile
    from edgezoo.validate import check_parity

    _, done = cells["int8"]
    model = onnx.load(str(done.artifact.path))
    weight = next(t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4 and t.dims[0] > 4)
    broken = numpy_helper.from_array(-numpy_helper.to_array(weight).clip(-127, 127), weight.name)
    weight.CopyFrom(broken)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    artifact = Artifact(**{**done.artifact.__dict__, "path": path, "files": (path,)})
    inputs = corpus.heldout_inputs(MODEL)
    parity = check_parity(artifact, "onnxruntime", inputs, corpus.reference_outputs(MODEL), classifier=True,
                          tolerance=resolve_profile("onnx").tolerance_for(done.artifact.quantization))
    assert not parity.passed and np.isfinite(parity.outputs[0].metrics["snr_db"])

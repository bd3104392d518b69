"""Where each op runs: the GPU delegate's verdicts and partitions, TFLM kernels by dtype, ONNX Runtime's providers.
Tiny models built here and converted with the real TFLite converter; the real analyzer, tflite-micro and onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from edgezoo.errors import UsageError
from edgezoo.formats.placement import place, placers
from edgezoo.formats.onnx import placement as onnx_placement
from edgezoo.formats.tfjs import placement as tfjs
from edgezoo.formats.tflite import placement as tflite_gpu, placement_tflm as tflm


def _tf():
    from edgezoo import _tf

    return _tf.tf()


def _convert(function, shape, int8=False) -> bytes:
    tf = _tf()
    concrete = tf.function(function).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    if int8:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.random(shape, dtype=np.float32)] for _ in range(8))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def _weights(*shape):
    return _tf().constant(np.random.default_rng(1).standard_normal(shape).astype(np.float32) * 0.3)


@pytest.fixture(scope="module")
def conv_model():
    tf = _tf()
    w1, w2 = _weights(3, 3, 3, 4), _weights(1, 1, 4, 2)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        y = tf.nn.max_pool2d(y, 2, 2, "VALID")
        return tf.nn.softmax(tf.reshape(tf.nn.conv2d(y, w2, 1, "SAME"), [1, -1]))

    return f


@pytest.fixture(scope="module")
def float_conv(conv_model):
    return _convert(conv_model, [1, 8, 8, 3])


@pytest.fixture(scope="module")
def topk_between_convs():
    """TOPK_V2 (no GPU kernel) on the path from one conv to the next: the delegate must cut there."""
    tf = _tf()
    w1, w2 = _weights(3, 3, 3, 4), _weights(1, 1, 4, 2)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        top = tf.math.top_k(tf.reshape(y, [1, -1]), k=3).values
        return tf.nn.sigmoid(tf.nn.conv2d(y * tf.reduce_sum(top), w2, 1, "SAME"))

    return _convert(f, [1, 8, 8, 3])


def test_float_conv_model_is_taken_whole_in_one_partition(float_conv):
    placement = tflite_gpu.place(float_conv)
    assert placement.rejected == ()
    assert placement.partitions == 1
    assert placement.summary() == f"GPU delegate: {len(placement.ops)} of {len(placement.ops)} ops, 1 partition"
    conv = next(op for op in placement.ops if op.op == "CONV_2D")
    assert conv.placed_on == "gpu" and conv.dtypes[0] == "float32" and conv.shapes[0] == (1, 8, 8, 3)
    data = placement.to_json()
    assert data["accepted"] == data["total"] == len(data["ops"]) and data["source"]


def test_rejected_op_is_named_with_reason_dtype_shape_and_splits_the_graph(topk_between_convs):
    placement = tflite_gpu.place(topk_between_convs)
    (rejected,) = placement.rejected
    assert rejected.op == "TOPK_V2" and rejected.placed_on == "fallback"
    assert rejected.reason == "Not supported op TOPK_V2"  # gpu_compatibility.cc's words, from either source
    assert rejected.dtypes[0] == "float32" and rejected.shapes[0] == (1, 256)
    assert placement.partitions == 2
    before, after = placement.details["partition_ops"]
    assert max(before) < rejected.index < min(after)
    assert placement.summary() == f"GPU delegate: {len(placement.ops) - 1} of {len(placement.ops)} ops, 2 partitions"


def test_a_rejected_op_off_the_path_does_not_split():
    """ARG_MAX feeds only a model output: TFLite's partitioning keeps the convs on both sides of it together,
    where counting runs of consecutive accepted ops would say 2."""
    tf = _tf()
    w1, w2 = _weights(3, 3, 3, 4), _weights(1, 1, 4, 4)

    def f(x):
        y = tf.nn.conv2d(x, w1, 1, "SAME")
        return tf.argmax(y, axis=-1), tf.nn.relu(tf.nn.conv2d(y, w2, 1, "SAME"))

    placement = tflite_gpu.place(_convert(f, [1, 8, 8, 3]))
    assert [op.op for op in placement.rejected] == ["ARG_MAX"]
    assert placement.partitions == 1
    order = [op.op for op in placement.ops]
    consecutive_runs = sum(1 for i, op in enumerate(placement.ops) if op.accepted and (i == 0 or not placement.ops[i - 1].accepted))
    assert consecutive_runs == 2 or order.index("ARG_MAX") == len(order) - 1, order  # the case the test is about


def test_partitions_follow_dependencies_not_positions():
    ops = [tflite_gpu._Op(i, name, "", inputs, (out,), inputs)
           for i, (name, inputs, out) in enumerate([("A", (0,), 1), ("X", (1,), 2), ("B", (1,), 3), ("C", (2, 3), 4)])]
    # X rejected; B does not read X, C does: {A, B} then {C}
    assert tflite_gpu.partitions(ops, [True, False, True, True], {0}) == [[0, 2], [3]]
    assert tflite_gpu.partitions(ops, [True, True, True, True], {0}) == [[0, 1, 2, 3]]


def test_analyzer_output_is_parsed(float_conv):
    from edgezoo.formats.tflite.flatbuffer import read_flatbuffer

    text = tflite_gpu.analyzer_text(float_conv)
    report = tflite_gpu.parse_analyzer(text)
    assert [op.op for op in report.ops] == [node.op for node in read_flatbuffer(float_conv).ops]
    assert report.ops[0].inputs[0] == 0 and report.ops[0].outputs
    # The format of analyzers built with the checker (TensorFlow <= 2.18 in the wild): warnings under the op line.
    sample = ("Subgraph#0 main(T#0) -> [T#3]\n  Op#0 CONV_2D(T#0, T#1, T#-1) -> [T#2]\n  Op#1 TOPK_V2(T#2, T#4[3]) -> [T#3, T#5]\n"
              "GPU COMPATIBILITY WARNING: Not supported op TOPK_V2\n\n"
              "GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 1 with TFLite runtime version 2.13.0\n")
    parsed = tflite_gpu.parse_analyzer(sample)
    assert parsed.ops[0].inputs == (0, 1, -1) and parsed.ops[0].warnings == ()
    assert parsed.ops[1].warnings == ("Not supported op TOPK_V2",) and parsed.flagged == {0: (1,)}


def test_tflm_kernels_for_an_int8_model(conv_model, topk_between_convs):
    placement = tflm.place(_convert(conv_model, [1, 8, 8, 3], int8=True))
    assert placement.rejected == () and placement.partitions is None
    assert {op.dtypes[0] for op in placement.ops if op.op == "CONV_2D"} == {"int8"}
    assert placement.details["int8_probe_status"]["CONV_2D"] == "int8"
    assert placement.summary() == f"TFLM kernels: {len(placement.ops)} of {len(placement.ops)} ops"
    missing = tflm.place(topk_between_convs)
    assert [op.op for op in missing.rejected] == ["TOPK_V2"] and "no TFLM kernel" in missing.rejected[0].reason
    assert missing.details["runs"] is False


def test_tflm_rejects_the_dequantize_of_a_float16_model(conv_model):
    tf = _tf()
    concrete = tf.function(conv_model).get_concrete_function(tf.TensorSpec([1, 8, 8, 3], tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    placement = tflm.place(converter.convert())
    assert {op.op for op in placement.rejected} == {"DEQUANTIZE"} and placement.rejected[0].dtypes == ("float16",)
    assert "int8, int16, uint8" in placement.rejected[0].reason


def test_onnx_nodes_get_their_execution_provider(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    weights = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.ones(108, np.float32))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("ArgMax", ["r"], ["y"], axis=1, name="argmax")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)], [weights])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    placement = onnx_placement.place(path)
    assert [(op.op, op.name, op.placed_on) for op in placement.ops] == [
        ("Conv", "conv", "CPUExecutionProvider"), ("Relu", "relu", "CPUExecutionProvider"),
        ("ArgMax", "argmax", "CPUExecutionProvider")]
    assert placement.details["providers_used"] == ["CPUExecutionProvider"]
    # The multi-provider form of the log, as session_state.cc writes it.
    log = ("[V:onnxruntime:, session_state.cc:1578 VerifyEachNodeIsAssignedToAnEp] Node placements\n"
           "[V:onnxruntime:, session_state.cc:1581 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [XnnpackExecutionProvider]. Number of nodes: 1\n"
           "[V:onnxruntime:, session_state.cc:1583 VerifyEachNodeIsAssignedToAnEp]   Conv (conv)\n"
           "[V:onnxruntime:, session_state.cc:1581 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 1\n"
           "[V:onnxruntime:, session_state.cc:1583 VerifyEachNodeIsAssignedToAnEp]   ArgMax (argmax)\n")
    assert onnx_placement.parse_placements(log) == (None, {"conv": "XnnpackExecutionProvider", "argmax": "CPUExecutionProvider"})


def test_registry(float_conv):
    (gpu,) = place("tflite", float_conv)
    assert gpu.backend == "GPU delegate"
    assert [p.__name__ for f in ("tflite", "tflm", "onnx", "tfjs") for p in placers(f)] == ["place"] * 3 + ["place_webgl", "place_wasm"]
    with pytest.raises(UsageError, match="Known formats: tflite, tflm, onnx, tfjs"):
        placers("coreml")


def test_tfjs_kernels_on_webgl_and_wasm(tmp_path):
    """A graph model with a kernel WASM lacks and WebGL has (Einsum, per the packages' registries) and a common one."""
    import subprocess
    import sys

    tf = _tf()
    module = tf.Module()
    module.w = tf.Variable(np.ones((4, 4), np.float32))
    module.f = tf.function(lambda x: tf.nn.relu(tf.einsum("ij,jk->ik", x, module.w)),
                           input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures=module.f)
    done = subprocess.run([sys.executable, "-m", "tensorflowjs.converters.converter", "--input_format=tf_saved_model",
                           str(tmp_path / "sm"), str(tmp_path / "js")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    webgl, wasm = place("tfjs", tmp_path / "js")
    assert webgl.backend == "TF.js WebGL" and webgl.rejected == ()
    assert "Einsum" in webgl.details["kernels_used"] and "Relu" in webgl.details["kernels_used"]
    assert [op.op for op in wasm.rejected] == ["Einsum"] and "tfjs-backend-wasm" in wasm.rejected[0].reason
    assert wasm.summary() == f"TF.js WASM: {len(wasm.ops) - 1} of {len(wasm.ops)} ops"
    assert tfjs.profile(tmp_path / "js")["tfjs_version"] == "4.22.0"


def test_a_model_with_state_tensors_is_placed(tmp_path):
    """gesture-lstm's LSTM reads its state (variable tensors) before any op writes them: those count as there from the
    start. (Waiting for them looped for ever, and a corpus run hung in its report.)"""
    from edgezoo.formats import converter_for
    from edgezoo.formats.base import ConversionRequest, Quantization
    from edgezoo.targets.static_shape import batch_shapes, fix_shapes
    from tests import corpus

    lstm = corpus.loaded("gesture-lstm")
    artifact = converter_for("tflite").convert(fix_shapes(lstm, batch_shapes(lstm, 1)), ConversionRequest(Quantization.FLOAT32), tmp_path)
    (placement,) = place("tflite", artifact.path)
    assert len(placement.ops) == 4 and placement.partitions >= 1
    assert any(op.op == "UNIDIRECTIONAL_SEQUENCE_LSTM" for op in placement.ops)


def test_a_plan_no_op_can_start_is_an_error_not_a_hang():
    """Two ops each reading what only the other writes: no pass can take either, so it is refused at once."""
    from edgezoo.errors import CorruptModelError

    ops = [tflite_gpu._Op(0, "ADD", "", (2,), (1,), (2,)), tflite_gpu._Op(1, "MUL", "", (1,), (2,), (1,))]
    with pytest.raises(CorruptModelError, match="no op writes"):
        tflite_gpu.partitions(ops, [True, False], available={0})

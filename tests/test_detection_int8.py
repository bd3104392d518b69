"""An int8 detector: calibrated on the bundled detector's own calibration images, its box and score heads' int8 error
in the quantisation trace, and the verified float fallback (ai-edge-quantizer, around TFLite_Detection_PostProcess)
keeping the worst ops in float until detection parity passes, with what is float read back from the file."""

from __future__ import annotations

import numpy as np


def _detection_op_inputs(path):
    """(name, dtype) of the inputs of the file's TFLite_Detection_PostProcess op, and the tensors behind them past any
    DEQUANTIZE (the quantised producers)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    ops = interpreter._get_ops_details()
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    producers = {out: op for op in ops for out in op["outputs"]}
    (op,) = [o for o in ops if o["op_name"] == "TFLite_Detection_PostProcess"]
    behind = []
    for index in op["inputs"][:2]:
        while index in producers and producers[index]["op_name"] in ("DEQUANTIZE", "QUANTIZE"):
            index = producers[index]["inputs"][0]
        behind.append(tensors[index]["name"])
    return [(tensors[i]["name"], np.dtype(tensors[i]["dtype"]).name) for i in op["inputs"][:2]], behind


def test_an_int8_detector_is_calibrated_on_its_own_images(strict_int8):
    calibration = strict_int8.report["calibration"]
    assert calibration["origin"] == "bundled" and not calibration.get("synthetic"), calibration
    import edgezoo

    own = edgezoo.load("shapes-detector").load_data().calibration["images"]
    assert calibration["num_calibration"] == len(own)  # the bundled detector's calibration split (data.npz calibration_images)


def test_the_heads_int8_error_is_in_the_trace(strict_int8):
    trace = strict_int8.report["quantization_trace"]
    assert {"raw_boxes", "raw_scores"} <= set(trace["outputs"])  # the heads, not the op's padded slots
    assert not {"detection_boxes", "num_detections"} & set(trace["outputs"])
    for head in ("raw_boxes", "raw_scores"):
        assert 10 < trace["outputs"][head]["total_snr_db"] < 60, trace["outputs"][head]
    # The heads' own layers (the Garden's RetinaNet head) appear in the per-layer report with their own error.
    heads = [layer for layer in trace["layers"] if "retina_net_head" in layer["layer"]]
    assert heads and all(np.isfinite(layer["snr_db"]) for layer in heads), [layer["layer"] for layer in trace["layers"]][:20]


def test_the_float_fallback_keeps_the_worst_ops_float_until_detection_parity_passes(strict_int8):
    assert strict_int8.passed, strict_int8.parity.summary()
    fallback = strict_int8.report["float_fallback"]
    assert fallback["outcome"] == "passed" and not fallback["plain"]["passed"]
    assert "mean_matched_iou" in fallback["plain"]["parity"]  # it failed on the detection limits (the boxes)
    detections = strict_int8.parity.outputs[0]
    assert detections.name == "detections" and detections.metrics["mean_matched_iou"] >= 0.95
    precision = strict_int8.report["precision"]  # read from the file that ships
    assert fallback["kept_float"] and set(fallback["kept_float"]) <= set(precision["float_layers"])
    assert precision["ops_by_precision"]["int8"] > 0 and precision["ops_by_precision"]["float32"] > 1
    assert strict_int8.artifact.quantization.value == "int8"
    # ai-edge-quantizer leaves the custom op as it is, in float, and feeds it float heads.
    inputs, _ = _detection_op_inputs(strict_int8.artifact.path)
    assert [dtype for _, dtype in inputs] == ["float32", "float32"], inputs

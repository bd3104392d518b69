"""(b) edgezoo's own overhead over the bare converter calls, in ONE process (imports paid once, both warm).

    python bench/overhead.py SAVED_MODEL CALIBRATION.npz WORKDIR REPEATS  -> JSON on stdout

Per target, the bare call is what a team's script does (TFLiteConverter, tf2onnx's Python API,
tensorflowjs' Python API); the edgezoo call is the converter module plus the profile's preparation
(fixed batch, op check). Calls alternate, and each keeps its fastest of REPEATS runs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edgezoo import _tf, load
from edgezoo.calibration import load_calibration
from edgezoo.formats import converter_for
from edgezoo.formats.tflite import frozen as tflite_frozen
from edgezoo.target_run import conversion_request
from edgezoo.targets import resolve_profile
from edgezoo.targets.constraints import prepare_model


def bare_calls(saved_model: str, calibration: str, workdir: Path) -> dict:
    tf = _tf.tf()
    import tf2onnx.convert
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    samples = np.load(calibration)
    array = samples[samples.files[0]]

    def phone():
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        (workdir / "phone.tflite").write_bytes(converter.convert())

    def microcontroller():
        loaded = tf.saved_model.load(saved_model)
        serving = loaded.signatures["serving_default"]
        specs = {n: tf.TensorSpec([1, *s.shape[1:]], s.dtype, name=n) for n, s in serving.structured_input_signature[1].items()}
        fixed = tf.function(lambda **inputs: serving(**inputs)).get_concrete_function(**specs)
        name = next(iter(specs))
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fixed], loaded)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ({name: s[None]} for s in array)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        (workdir / "micro.tflite").write_bytes(converter.convert())

    def onnx():  # what tf2onnx's command line does for --saved-model
        from tf2onnx import tf_loader

        graph_def, inputs, outputs = tf_loader.from_saved_model(saved_model, None, None, tag="serve", signatures=["serving_default"])
        tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs, opset=17, output_path=str(workdir / "model.onnx"))

    def browser():
        tf_saved_model_conversion_v2.convert_tf_saved_model(saved_model, str(workdir / "tfjs"), quantization_dtype_map={"float16": "*"})

    return {"phone": phone, "microcontroller": microcontroller, "onnx": onnx, "browser": browser}


def edgezoo_calls(saved_model: str, calibration: str, workdir: Path, micro_profile: str) -> dict:
    model = load(saved_model)
    data = load_calibration(calibration, model)
    # The bare script calibrates on every sample it is given; edgezoo on its calibration split.
    calls = {}
    for key, target in (("phone", "phone"), ("microcontroller", micro_profile), ("onnx", "onnx"), ("browser", "browser")):
        profile = resolve_profile(target)
        request = conversion_request(profile, profile.quantization, data)
        folder = workdir / f"edgezoo-{key}"

        def call(profile=profile, request=request, folder=folder):
            tflite_frozen.forget_traces()  # each call starts from the SavedModel on disk, as a fresh process would
            folder.mkdir(parents=True, exist_ok=True)
            converter_for(profile.format).convert(prepare_model(model, profile), request, folder)

        calls[key] = call
    return calls


def fastest(call, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        with _tf.quiet_native_output():
            call()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    saved_model, calibration, workdir, repeats, micro_profile = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    workdir.mkdir(parents=True, exist_ok=True)
    bare = bare_calls(saved_model, calibration, workdir)
    ours = edgezoo_calls(saved_model, calibration, workdir, micro_profile)
    for call in (*bare.values(), *ours.values()):  # warm-up: first-call tracing and lazy imports
        with _tf.quiet_native_output():
            call()
    results = {}
    for key in bare:
        bare_seconds = ours_seconds = float("inf")
        for _ in range(repeats):  # alternate so that drift in machine load hits both alike
            bare_seconds = min(bare_seconds, fastest(bare[key], 1))
            ours_seconds = min(ours_seconds, fastest(ours[key], 1))
        results[key] = {"bare_seconds": bare_seconds, "edgezoo_seconds": ours_seconds, "ratio": ours_seconds / bare_seconds}
    print(json.dumps(results))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()

"""One latency measurement, in a process of its own so that its peak memory is the runtime's and the
model's alone: `python -m edgezoo.validate.latency_child SPEC.json` prints one JSON line.

SPEC: {"backend", "model", "inputs" (an .npz of one sample per input, keyed by the model's tensor
names), "threads", "warmup", "runs"}. Each backend opens the model once and returns a function that
runs it on the sample; only the runtime it needs is imported.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    """This process's own high-water mark. Not getrusage's ru_maxrss: on Linux that also carries the parent's
    peak from before exec (subprocess starts children with vfork), so a parent that had loaded TensorFlow
    would show up in every child's figure."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


# Each backend: import the runtime (before the baseline memory reading), then open the model on the sample.


def _import_litert():
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter


def _open_litert(Interpreter, spec: dict, sample: dict):
    from edgezoo.formats.tflite import quantize_input

    runner = Interpreter(model_path=spec["model"], num_threads=spec["threads"]).get_signature_runner()
    details = runner.get_input_details()
    feed = {name: quantize_input(sample[name], d) if np.dtype(d["dtype"]).kind in "iu" and sample[name].dtype.kind == "f" else sample[name]
            for name, d in details.items()}
    return lambda: runner(**feed)


def _import_onnxruntime():
    import onnxruntime

    return onnxruntime


def _open_onnxruntime(onnxruntime, spec: dict, sample: dict):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = spec["threads"]
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(spec["model"], options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, sample)


def _import_tensorflow():
    from edgezoo import _tf

    return _tf.tf()


def _open_tensorflow(tf, spec: dict, sample: dict):
    from edgezoo import _tf
    from edgezoo.validate.matching import plan_inputs
    from edgezoo.zoo import LoadOptions, load

    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = load(spec["model"], LoadOptions())
    with _tf.quiet_native_output():
        loaded = tf.saved_model.load(str(model.saved_model_dir))
    function = loaded.signatures[model.signature_key]
    artifact_inputs = {name: tuple(shape) for name, shape in spec["artifact_inputs"].items()}
    # The sample has the artifact's names; same-shaped inputs left to values can take any order for timing.
    names = plan_inputs({s.name: s.shape for s in model.inputs}, artifact_inputs, max_trials=None).in_order()
    feed = {name: tf.constant(sample[tensor]) for name, tensor in names.items()}
    return lambda: function(**feed)


BACKENDS = {
    "litert": (_import_litert, _open_litert),
    "onnxruntime": (_import_onnxruntime, _open_onnxruntime),
    "tensorflow": (_import_tensorflow, _open_tensorflow),
}


def measure(spec: dict) -> dict:
    with np.load(spec["inputs"]) as data:
        sample = {name: data[name] for name in data.files}
    import_runtime, open_model = BACKENDS[spec["backend"]]
    runtime = import_runtime()
    runtime_rss = _rss_bytes()
    run = open_model(runtime, spec, sample)
    for _ in range(spec["warmup"]):
        run()
    times = []
    for _ in range(spec["runs"]):
        start = time.perf_counter_ns()
        run()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return {"times_ms": times, "peak_rss_bytes": _peak_rss_bytes(), "runtime_rss_bytes": runtime_rss}


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        result = measure(spec)
    except Exception as exc:  # reported to the parent, which names the case that failed
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Check, on the device itself, that this model still behaves like the original it was converted from.

Written by edgezoo next to the model, with the golden inputs, the original's outputs on them, and
the target's tolerances. It needs only numpy and the model's runtime:
    TFLite: tflite_runtime or ai_edge_litert   (pip install numpy tflite-runtime)
    ONNX:   onnxruntime                         (pip install numpy onnxruntime)

    python3 check_parity.py                     # the model named in tolerances.json (../model.tflite)
    python3 check_parity.py --model other.tflite --json

A detector (tolerances.json has a `detection` section) is judged by its boxes, as edgezoo judges it: per image the
detections up to num_detections, boxes normalised to [0, 1], the background class dropped, then matched to the
original's by class at IoU >= 0.5; recall, precision, mean IoU of matched pairs and score differences against the
limits, detections within the score margin of the threshold excused. Its pre-NMS heads, when shipped, by tensor metrics.

Exit code: 0 every output within tolerance; 1 parity failed or the model did not run;
2 the check cannot start (runtime not installed, files missing).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SNR_CAP_DB = 300.0


class CannotStart(Exception):
    """Something is missing on this device; not a parity verdict."""


# --- metrics: the same formulas as edgezoo's own report (a test in edgezoo checks that they agree) ---


def _error(ref, out):
    return out.astype(np.float64) - ref.astype(np.float64)


def max_abs_error(ref, out):
    return float(np.max(np.abs(_error(ref, out))))


def mean_abs_error(ref, out):
    return float(np.mean(np.abs(_error(ref, out))))


def cosine(ref, out):
    """Per-sample cosine similarity weighted by ‖ref_i‖‖out_i‖: sum <ref_i, out_i> / sum ‖ref_i‖‖out_i‖ (1 if identical)."""
    a = ref.reshape(len(ref), -1).astype(np.float64)
    b = out.reshape(len(out), -1).astype(np.float64)
    if np.array_equal(a, b):
        return 1.0
    weight = float(np.sum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))
    return float(np.sum(a * b) / weight) if weight > 0 else 0.0


def snr_db(ref, out):
    noise = float(np.sum(_error(ref, out) ** 2))
    signal = float(np.sum(ref.astype(np.float64) ** 2))
    if not np.isfinite(noise):
        return float("nan")  # min(cap, nan) would read as a perfect 300 dB
    if noise == 0:
        return SNR_CAP_DB
    return float(min(SNR_CAP_DB, 10 * np.log10(signal / noise))) if signal > 0 else -SNR_CAP_DB


def relative_l2_error(ref, out):
    error = float(np.linalg.norm(_error(ref, out).ravel()))
    reference = float(np.linalg.norm(ref.astype(np.float64).ravel()))
    if reference == 0:
        return 0.0 if error == 0 else float("inf")
    return error / reference


def max_error_over_range(ref, out):
    """The largest absolute error over the reference's peak-to-peak range, floored at 1e-3 of its magnitude (a reference
    that nearly does not vary is judged against its magnitude), as edgezoo's host check judges it."""
    error = float(np.max(np.abs(_error(ref, out))))
    values = ref.astype(np.float64)
    spread, magnitude = float(values.max() - values.min()), float(np.max(np.abs(values)))
    scale = max(spread, 1e-3 * magnitude) if spread else magnitude
    if scale == 0:
        return 0.0 if error == 0 else float("inf")
    return error / scale


def top1_agreement(ref, out):
    return float(np.mean(np.argmax(ref, axis=-1) == np.argmax(out, axis=-1)))


def top5_agreement(ref, out):
    """Share of samples whose best class in the original is among the artifact's five best; None for <= 5 classes."""
    classes = ref.shape[-1]
    if classes <= 5:
        return None
    best = np.argmax(ref.reshape(-1, classes), axis=-1)
    top5 = np.argpartition(-out.reshape(-1, classes).astype(np.float64), 5, axis=-1)[:, :5]
    return float(np.mean(np.any(top5 == best[:, None], axis=-1)))


DECISION_THRESHOLD, DECISION_MARGIN = 0.5, 0.05


def decision_agreement(ref, out):
    """Share of the original's clear decisions (|p - 0.5| >= 0.05) taken the same way; None if it takes none."""
    ref, out = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
    clear = np.abs(ref - DECISION_THRESHOLD) >= DECISION_MARGIN
    if not np.any(clear):
        return None
    return float(np.mean((ref[clear] > DECISION_THRESHOLD) == (out[clear] > DECISION_THRESHOLD)))


METRICS = {"max_abs_error": max_abs_error, "mean_abs_error": mean_abs_error, "cosine": cosine, "snr_db": snr_db,
           "relative_l2_error": relative_l2_error, "max_error_over_range": max_error_over_range}
# Metrics for one kind of output only (the kind edgezoo read from the original's outputs, in tolerances.json).
KIND_METRICS = {"class scores": {"top1_agreement": top1_agreement, "top5_agreement": top5_agreement}, "probabilities": {"decision_agreement": decision_agreement}}
CLASSIFIER_METRICS = KIND_METRICS["class scores"]


def violations(tolerance: dict, values: dict, limits: dict | None = None) -> list[str]:
    """Each limit bounds a metric from below or above: `limits` maps limit -> [metric, "min"|"max"]; without
    it, `min_X` bounds X from below and any other limit caps the metric of its own name."""
    found = []
    for limit, bound in tolerance.items():
        if limits and limit in limits:
            metric, direction = limits[limit]
        else:
            metric, direction = (limit[len("min_"):], "min") if limit.startswith("min_") else (limit, "max")
        measured = values.get(metric)
        if measured is None:
            continue  # not applicable to this output (top-1 on a regression head)
        if direction == "min" and not measured >= bound:  # written so that NaN fails
            found.append(f"{metric} {measured:.6g} < {bound:g}")
        elif direction == "max" and not measured <= bound:
            found.append(f"{metric} {measured:.6g} > {bound:g}")
    return found


# --- detectors: matched boxes, the same rules as edgezoo/validate/detection.py (a test in edgezoo checks they agree) ---

BOXES, CLASSES, SCORES, COUNT = "detection_boxes", "detection_classes", "detection_scores", "num_detections"
DETECTION_OUTPUTS = (BOXES, CLASSES, SCORES, COUNT)
DETECTION_METRICS = ("detection_recall", "detection_precision", "mean_matched_iou", "mean_score_difference", "max_score_difference")


def split_detections(outputs: dict, image_size, background):
    """Per image (boxes [n, 4] in [0, 1], classes [n], scores [n]) of the first num_detections slots only: slots past it
    are uninitialised on LiteRT. Boxes in pixels (a coordinate above 1.5) are divided by the image size."""
    found = []
    counts = np.asarray(outputs[COUNT]).reshape(len(outputs[COUNT]), -1)[:, 0]
    for i, count in enumerate(counts):
        n = int(np.clip(np.rint(np.nan_to_num(count)), 0, outputs[SCORES].shape[1]))  # int8 counts dequantise to 6.98
        boxes = np.asarray(outputs[BOXES][i, :n], np.float64).reshape(n, 4)
        if image_size and n and np.nanmax(np.abs(boxes)) > 1.5:
            height, width = image_size
            boxes = boxes / np.array([height, width, height, width], np.float64)
        boxes = np.clip(boxes, 0.0, 1.0)
        classes = np.rint(outputs[CLASSES][i, :n]).astype(np.int64)
        scores = np.asarray(outputs[SCORES][i, :n], np.float64)
        keep = classes != background if background is not None else np.ones(n, bool)
        found.append((boxes[keep], classes[keep], scores[keep]))
    return found


def iou_matrix(a, b):
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)

    def area(x):
        return np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=-1)

    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_detections(ref, cand, iou_threshold):
    """Greedy by class: the original's detections by score, each to the free candidate of its class with the highest IoU
    at or above the threshold. Returns (reference index, candidate index, IoU) pairs."""
    ious = iou_matrix(ref[0], cand[0])
    taken = np.zeros(len(cand[2]), bool)
    pairs = []
    for r in np.argsort(-ref[2], kind="stable"):
        options = np.where((cand[1] == ref[1][r]) & ~taken & (ious[r] >= iou_threshold))[0]
        if len(options):
            c = options[np.argmax(ious[r, options])]
            taken[c] = True
            pairs.append((int(r), int(c), float(ious[r, c])))
    return pairs


def detection_metrics(reference, candidate, settings: dict) -> dict:
    """Recall, precision, mean matched IoU and score differences over all images; unmatched detections scored below
    threshold + margin count neither as misses nor as extras."""
    near = settings["score_threshold"] + settings["score_margin"]
    matched = ref_counted = cand_counted = excused = 0
    ious, diffs = [], []
    for ref, cand in zip(reference, candidate):
        pairs = match_detections(ref, cand, settings.get("iou_threshold", 0.5))
        lost = [r for r in range(len(ref[2])) if r not in {p[0] for p in pairs}]
        extra = [c for c in range(len(cand[2])) if c not in {p[1] for p in pairs}]
        lost_counted = [r for r in lost if ref[2][r] >= near]
        extra_counted = [c for c in extra if cand[2][c] >= near]
        excused += len(lost) - len(lost_counted) + len(extra) - len(extra_counted)
        matched += len(pairs)
        ref_counted += len(pairs) + len(lost_counted)
        cand_counted += len(pairs) + len(extra_counted)
        ious += [iou for _, _, iou in pairs]
        diffs += [abs(float(ref[2][r]) - float(cand[2][c])) for r, c, _ in pairs]
    return {
        "detection_recall": matched / ref_counted if ref_counted else 1.0,
        "detection_precision": matched / cand_counted if cand_counted else 1.0,
        "mean_matched_iou": float(np.mean(ious)) if ious else (1.0 if not ref_counted else 0.0),
        "mean_score_difference": float(np.mean(diffs)) if diffs else 0.0,
        "max_score_difference": float(np.max(diffs)) if diffs else 0.0,
        "reference_detections": sum(len(r[2]) for r in reference),
        "artifact_detections": sum(len(c[2]) for c in candidate),
        "matched_detections": matched,
        "near_threshold_unmatched": excused,
    }


def judge_detector(manifest: dict, expected: dict, produced: dict) -> list:
    """The `detections` entry (matched boxes), then the pre-NMS heads shipped beside them by tensor metrics."""
    settings = manifest["detection"]
    size, background = settings.get("image_size"), settings.get("background", 0)
    values = detection_metrics(split_detections(expected, size, background), split_detections(produced, size, background), settings)
    problems = violations(manifest["tolerance"], values, manifest.get("limits"))
    if not values["reference_detections"]:
        problems.insert(0, "the original detects nothing on the golden inputs: matching proves nothing")
    outputs = [{"name": "detections", **values, "passed": not problems, "violations": problems}]
    for name in expected:
        if name not in DETECTION_OUTPUTS:
            outputs.append(judge_tensor(manifest, name, expected[name], produced[name], "values"))
    return outputs


# --- runtimes: each opens a model and returns (run one sample, description of the runtime) ---


def _import_first(module_names):
    for name in module_names:
        try:
            return importlib.import_module(name), name
        except ImportError:
            continue
    raise CannotStart(f"none of the runtimes {', '.join(module_names)} is installed; install one (pip install {module_names[-1].split('.')[0].replace('_', '-')}).")


def _to_input(sample, detail):
    """Float golden inputs into an integer input tensor, with its scale and zero point."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind in "iu" and sample.dtype.kind == "f":
        scale, zero_point = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(sample / scale + zero_point), info.min, info.max).astype(dtype)
    return sample.astype(dtype)


def _from_output(value, detail):
    if np.dtype(detail["dtype"]).kind in "iu" and detail["quantization"][0]:
        scale, zero_point = detail["quantization"]
        return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return value


def open_tflite(model_path: Path, options: dict):
    module, name = _import_first(["ai_edge_litert.interpreter", "tflite_runtime.interpreter"])
    try:
        interpreter = module.Interpreter(model_path=str(model_path), num_threads=options.get("num_threads", 1))
        runner = interpreter.get_signature_runner()
    except (ValueError, RuntimeError) as exc:
        raise RuntimeError(f"{name} cannot load {model_path}: {exc}") from exc
    inputs, outputs = runner.get_input_details(), runner.get_output_details()

    invoked = []

    def run(sample: dict) -> dict:
        if invoked:  # every sample from a clean state (a fused LSTM keeps state between calls); a fresh one has it
            interpreter.reset_all_variables()
        invoked.append(True)
        result = runner(**{key: _to_input(sample[key], detail) for key, detail in inputs.items()})
        return {key: _from_output(value, outputs[key]) for key, value in result.items()}

    return run, f"{name.split('.')[0]} {_version(name)}"


def open_onnx(model_path: Path, options: dict):
    module, name = _import_first(["onnxruntime"])
    try:
        session = module.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise RuntimeError(f"onnxruntime cannot load {model_path}: {exc}") from exc
    names = [output.name for output in session.get_outputs()]
    types = {i.name: i.type for i in session.get_inputs()}
    numpy_type = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}

    def run(sample: dict) -> dict:
        feed = {key: value.astype(numpy_type.get(types[key], value.dtype)) for key, value in sample.items()}
        return dict(zip(names, session.run(names, feed)))

    return run, f"onnxruntime {_version(name)}"


RUNTIMES = {"tflite": open_tflite, "onnx": open_onnx}


def _version(module_name):
    try:
        return importlib.import_module(module_name.split(".")[0]).__version__
    except (ImportError, AttributeError):
        return "?"


# --- labels the model carries ---


def tflite_labels(model_path: Path):
    """(file name, labels) from the zip of associated files appended to a .tflite (TFLite metadata), or (None, None)."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            names = archive.namelist()
            name = "labels.txt" if "labels.txt" in names else next((n for n in names if "label" in n.lower()), None)
            if name is None:
                return None, None
            return name, archive.read(name).decode("utf-8", "replace").splitlines()
    except (OSError, zipfile.BadZipFile):
        return None, None


LABEL_READERS = {"tflite": tflite_labels}


# --- the check ---


def read_npz(path: Path) -> dict:
    if not path.exists():
        raise CannotStart(f"{path} is missing; copy the whole device_check folder next to the model.")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CannotStart(f"cannot read {path}: {exc}") from exc


def check(manifest: dict, model_path: Path, inputs: dict, expected: dict) -> dict:
    opener = RUNTIMES.get(manifest["format"])
    if opener is None:
        raise CannotStart(f"this script checks {', '.join(RUNTIMES)} models, not '{manifest['format']}'.")
    if not model_path.exists():
        raise CannotStart(f"no model at {model_path}; pass --model PATH.")
    input_names, output_names = manifest["inputs"], manifest["outputs"]  # golden name -> the model's tensor name
    count = len(next(iter(inputs.values())))
    try:
        run, runtime = opener(model_path, manifest.get("runtime_options", {}))
        started = time.perf_counter()
        produced = {name: [] for name in output_names}
        for index in range(count):  # one sample at a time: converted models often fix the batch to 1
            result = run({input_names[name]: array[index : index + 1] for name, array in inputs.items()})
            for name, tensor in output_names.items():
                produced[name].append(np.asarray(result[tensor]).reshape(expected[name].shape[1:]))
        seconds = time.perf_counter() - started
    except (RuntimeError, ValueError, KeyError) as exc:
        return {"passed": False, "error": f"the model did not run: {type(exc).__name__}: {exc}", "outputs": [], "num_samples": count}
    produced = {name: np.stack(values) for name, values in produced.items()}
    if manifest.get("detection"):
        outputs = judge_detector(manifest, expected, produced)
    else:
        kinds = manifest.get("output_kinds") or {}
        default = "class scores" if manifest.get("classifier") else "values"
        outputs = [judge_tensor(manifest, name, expected[name], produced[name], kinds.get(name, default)) for name in output_names]
    return {
        "passed": all(o["passed"] for o in outputs),
        "runtime": runtime,
        "num_samples": count,
        "seconds": round(seconds, 3),
        "outputs": outputs,
        "error": None,
    }


def judge_tensor(manifest: dict, name: str, ref, out, kind: str) -> dict:
    metrics = dict(METRICS, **KIND_METRICS.get(kind, {}))
    values = {metric: value for metric, fn in metrics.items() if (value := fn(ref, out)) is not None}
    problems = violations(manifest["tolerance"], values, manifest.get("limits"))
    if not np.all(np.isfinite(out)) and np.all(np.isfinite(ref)):
        problems.insert(0, f"{int(np.sum(~np.isfinite(out)))} non-finite values (NaN or Inf)")
    return {"name": name, **values, "passed": not problems, "violations": problems}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check this model against the original's outputs on the golden inputs.")
    parser.add_argument("--model", help="the model file (default: the one named in tolerances.json)")
    parser.add_argument("--bundle", default=str(HERE), help="the device_check folder (default: this script's folder)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    bundle = Path(args.bundle)
    try:
        manifest_path = bundle / "tolerances.json"
        if not manifest_path.exists():
            raise CannotStart(f"{manifest_path} is missing; copy the whole device_check folder next to the model.")
        manifest = json.loads(manifest_path.read_text())
        model_path = Path(args.model) if args.model else (bundle / manifest["model"]).resolve()
        result = check(manifest, model_path, read_npz(bundle / "golden_inputs.npz"), read_npz(bundle / "expected_outputs.npz"))
    except CannotStart as exc:
        print(f"check_parity: cannot start: {exc}", file=sys.stderr)
        return 2
    result["model"] = str(model_path)
    labels_file, labels = LABEL_READERS.get(manifest["format"], lambda path: (None, None))(model_path)
    result["labels"], result["labels_file"] = labels, labels_file
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_describe(result, manifest))
    return 0 if result["passed"] else 1


def _describe(result: dict, manifest: dict) -> str:
    lines = [f"model: {result['model']} ({manifest.get('model_name', '?')}, target {manifest.get('target', '?')})"]
    labels = result.get("labels")
    if labels:
        shown = ", ".join(labels[:10]) + (f", ... ({len(labels)} in all)" if len(labels) > 10 else "")
        lines.append(f"labels ({len(labels)}, {result['labels_file']} inside the model): {shown}")
    elif manifest.get("format") in LABEL_READERS:
        lines.append("labels: none in the model")
    if result["error"]:
        lines.append(f"FAILED: {result['error']}")
        return "\n".join(lines)
    for output in result["outputs"]:
        names = (*METRICS, *(name for kind in KIND_METRICS.values() for name in kind), *DETECTION_METRICS, "matched_detections")
        figures = ", ".join(f"{key} {output[key]:.6g}" for key in names if output.get(key) is not None)
        mark = "ok" if output["passed"] else "FAIL: " + "; ".join(output["violations"])
        lines.append(f"  {output['name']}: {figures} -- {mark}")
    verdict = "PASSED" if result["passed"] else "FAILED"
    lines.append(
        f"{verdict}: {result['num_samples']} golden inputs on {result['runtime']} "
        f"({result['seconds']:.2f} s), tolerance {json.dumps(manifest['tolerance'])}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""`edgezoo bench ARTIFACT`: latency (median and p90 over repeated runs after warm-up) and peak memory of an
artifact on its host runtime, next to the original model in TensorFlow.

Every case runs in a child process of its own (latency_child.py, or bench_node.mjs for TF.js), so its peak
resident memory is that runtime's and that model's alone, and one case cannot warm another's caches.
All cases run the same single sample (batch 1): the golden input from device_check/ beside the artifact
when there is one, else a random one of the artifact's input shapes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgezoo._workspace import scratch_dir
from edgezoo.errors import RuntimeFailure, UsageError
from edgezoo.formats.tfjs import JS_DIR
from edgezoo.validate.device_check import save_npz

TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class BenchOptions:
    runs: int = 50
    warmup: int = 5
    threads: int | None = None  # the multi-threaded cases; None: every core of this machine
    source: str | None = None  # the original, for the TensorFlow baseline; None: the model named in report.json beside the artifact
    original: bool = True  # also measure the original in TensorFlow
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # --input-shape: a random sample of these shapes, not the golden one

    def __post_init__(self):
        from edgezoo.targets.static_shape import normalise_input_shapes

        object.__setattr__(self, "input_shapes", normalise_input_shapes(self.input_shapes))
        if self.runs < 1 or self.warmup < 0:
            raise UsageError("bench needs at least one timed run (--runs) and no negative warm-up (--warmup).")
        if self.threads is not None and self.threads < 1:
            raise UsageError("--threads must be at least 1.")

    @property
    def thread_counts(self) -> tuple[int, ...]:
        many = self.threads or os.cpu_count() or 1
        return (1,) if many == 1 else (1, many)


@dataclass(frozen=True)
class BenchCase:
    label: str
    backend: str  # a latency_child backend, or "tfjs-node"
    model: str  # the artifact's path, or the original's source string
    threads: int


@dataclass(frozen=True)
class Measurement:
    case: BenchCase
    times_ms: tuple[float, ...]
    peak_rss_bytes: int
    runtime_rss_bytes: int  # resident after importing the runtime, before the model

    def to_json(self) -> dict:
        times = np.asarray(self.times_ms)
        return {
            "label": self.case.label,
            "runtime": self.case.backend,
            "threads": self.case.threads,
            "runs": len(times),
            "median_ms": float(np.median(times)),
            "p90_ms": float(np.percentile(times, 90)),
            "min_ms": float(times.min()),
            "mean_ms": float(times.mean()),
            "peak_rss_bytes": self.peak_rss_bytes,
            "runtime_rss_bytes": self.runtime_rss_bytes,
            "model_rss_bytes": max(0, self.peak_rss_bytes - self.runtime_rss_bytes),  # what loading and running the model added
        }


@dataclass(frozen=True)
class BenchResult:
    artifact: Path
    format: str
    source: str | None
    sample: dict[str, list[int]]
    warmup: int
    measurements: tuple[Measurement, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        rows = [m.to_json() for m in self.measurements]
        originals = {row["threads"]: row["median_ms"] for row in rows if row["runtime"] == "tensorflow"}
        for row in rows:
            baseline = originals.get(row["threads"])
            row["speedup_over_original"] = baseline / row["median_ms"] if baseline and row["runtime"] != "tensorflow" else None
        return {"artifact": str(self.artifact), "format": self.format, "source": self.source, "batch": 1,
                "sample_shapes": self.sample, "warmup": self.warmup, "cases": rows}


# Format -> (the host runtime's name for people, its backend, whether it takes a thread count).
HOST_RUNTIMES = {
    "tflite": ("LiteRT", "litert", True),
    "onnx": ("ONNX Runtime", "onnxruntime", True),
    "tfjs": ("TF.js in Node (cpu)", "tfjs-node", False),
}


def bench(artifact: str | Path, options: BenchOptions | None = None, step=None) -> BenchResult:
    from edgezoo.formats.inspect import artifact_kind, artifact_path

    options = options or BenchOptions()
    path = artifact_path(str(artifact)).resolve()
    kind = artifact_kind(path)
    info = kind.inspect(path)
    sample = _sample(path, info, options.input_shapes)
    name, backend, threaded = HOST_RUNTIMES[kind.format]
    counts = options.thread_counts if threaded else (1,)
    cases = [BenchCase(f"{name}, {n} thread{'s' * (n > 1)}" if threaded else name, backend, str(path), n) for n in counts]
    source = options.source or _source_from_report(path)
    if options.original and source:
        cases += [BenchCase(f"TensorFlow (original), {n} thread{'s' * (n > 1)}", "tensorflow", source, n) for n in options.thread_counts]
    workdir = scratch_dir("bench-")
    measurements = []
    for case in cases:
        with step(f"measuring {case.label}") if step else contextlib.nullcontext():
            measurements.append(_measure(case, sample, info, options, workdir))
    return BenchResult(path, kind.format, source, {k: list(v.shape) for k, v in sample.items()}, options.warmup, tuple(measurements))


def _sample(path: Path, info, input_shapes=()) -> dict[str, np.ndarray]:
    """One input sample keyed by the artifact's tensor names: random of the --input-shape sizes when given, else the first
    golden input when a bundle is beside it, else random of the artifact's static shapes."""
    from edgezoo.targets.static_shape import check_against, flag_to_fill, show

    given = {name: fixed.shape for name, fixed in check_against(str(path), info.inputs, input_shapes).items()}
    for folder in (path.parent, path.parent.parent):
        manifest_path = folder / "device_check" / "tolerances.json"
        if manifest_path.exists() and not given:
            manifest = json.loads(manifest_path.read_text())
            if (manifest_path.parent / manifest["model"]).resolve() == path:
                with np.load(manifest_path.parent / "golden_inputs.npz") as golden:
                    return {manifest["inputs"][name]: golden[name][:1] for name in golden.files}
    dynamic = {name: shape for name, shape in info.inputs.items() if name not in given and None in shape[1:]}
    if dynamic:
        raise UsageError(f"{path} has inputs with dynamic dimensions ({', '.join(f'{n!r} {show(s)}' for n, s in dynamic.items())}) "
                         f"and no golden inputs beside it; give the size to measure: "
                         f"{' '.join(flag_to_fill(n, s) for n, s in dynamic.items())} (each D a size).")
    rng = np.random.default_rng(0)
    shapes = {name: given.get(name, (1, *shape[1:])) for name, shape in info.inputs.items()}
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def _source_from_report(path: Path) -> str | None:
    for folder in (path.parent, path.parent.parent):
        report = folder / "report.json"
        if report.exists():
            return json.loads(report.read_text()).get("model", {}).get("source")
    return None


def _measure(case: BenchCase, sample: dict[str, np.ndarray], info, options: BenchOptions, workdir: Path) -> Measurement:
    folder = Path(workdir) / f"case-{len(list(Path(workdir).iterdir()))}"
    folder.mkdir()
    spec = {"backend": case.backend, "model": case.model, "threads": case.threads, "warmup": options.warmup, "runs": options.runs}
    if case.backend == "tfjs-node":
        command = _node_command(folder, spec, sample)
    else:
        save_npz(folder / "inputs.npz", sample)
        spec.update(inputs=str(folder / "inputs.npz"), artifact_inputs={k: list(v) for k, v in info.inputs.items()})
        (folder / "spec.json").write_text(json.dumps(spec))
        command = [sys.executable, "-m", "edgezoo.validate.latency_child", str(folder / "spec.json")]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, cwd=folder)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(f"{case.label} took over {TIMEOUT_SECONDS} s; try fewer --runs.") from exc
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"error": done.stderr.strip()[-2000:] or f"exit {done.returncode}"}
    if done.returncode != 0 or "error" in result:
        raise RuntimeFailure(f"measuring {case.label} failed: {result.get('error')}")
    return Measurement(case, tuple(result["times_ms"]), int(result["peak_rss_bytes"]), int(result["runtime_rss_bytes"]))


def _node_command(folder: Path, spec: dict, sample: dict[str, np.ndarray]) -> list[str]:
    from edgezoo.formats.tfjs import node_modules

    node_modules()  # a clear error when `make install` has not installed TF.js
    node = shutil.which("node")
    if node is None:
        raise RuntimeFailure("Node.js is not installed (no `node` on PATH); the TF.js benchmark needs Node 20.")
    inputs = {}
    for position, (name, array) in enumerate(sample.items()):
        data = np.ascontiguousarray(array.astype(np.float32 if array.dtype.kind == "f" else np.int32))
        (folder / f"input_{position}.bin").write_bytes(data.tobytes())
        inputs[name] = {"shape": list(data.shape), "dtype": data.dtype.name, "file": f"input_{position}.bin"}
    (folder / "spec.json").write_text(json.dumps({**spec, "inputs": inputs}))
    return [node, str(JS_DIR / "bench_node.mjs"), str(folder / "spec.json")]


def describe(result: BenchResult) -> str:
    """A table for people."""
    data = result.to_json()
    lines = [
        f"{result.artifact} ({result.format}), batch 1, {data['warmup']} warm-up runs"
        + (f", original: {result.source}" if result.source else ", no original to compare (give --source)"),
        f"{'case':<36} {'median ms':>10} {'p90 ms':>10} {'peak RSS':>10} {'model RSS':>10} {'vs original':>12}",
    ]
    for row in data["cases"]:
        ratio = row["speedup_over_original"]
        speed = "" if not ratio else f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
        lines.append(
            f"{row['label']:<36} {row['median_ms']:>10.3f} {row['p90_ms']:>10.3f} {row['peak_rss_bytes'] / 2**20:>8.1f}Mi "
            f"{row['model_rss_bytes'] / 2**20:>8.1f}Mi {speed:>12}"
        )
    return "\n".join(lines)

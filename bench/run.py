"""`make bench`: edgezoo against the usual way, side by side in one run. Writes bench/results.json,
bench/results.md, and the table between the bench markers in README.md.

    PYTHONPATH=$PWD .venv/bin/python bench/run.py [--models digits-cnn,mobilenet_v2,efficientnet_b0] [--parts a,b,c,d,e]
        [--repeats 2] [--runs 30]

--parts measures those parts and keeps the others (and other models' rows) from bench/results.json; the files are
rewritten after each model, so an interrupted run keeps what it measured. Each (b) row records the load average at
its start (the machine is shared).

(a) edgezoo converting for phone, microcontroller, browser and onnx in one process, against each official
    tool in its own process (a TFLiteConverter script, the tf2onnx CLI, the tensorflowjs_converter CLI):
    wall time and peak memory, as ratios.
(b) edgezoo's overhead over the bare converter calls in one process (overhead.py): calls alternate, each side keeps
    its fastest of --repeats.
(c) artifact sizes: float16 and int8 against float32; gzip size after 50% pruning against without.
(d) latency of each artifact on its runtime against the original in TensorFlow (same sample, 1 thread).
(e) int8 top-1 agreement with the float model on the digits held-out split, on LiteRT and on TFLM.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from measure import measure, measure_each  # noqa: E402

PY = sys.executable
BIN = Path(sys.executable).parent
MICRO_PROFILE = {"digits-cnn": "microcontroller"}  # the ImageNet-size models need bigger budgets
LARGE_MICRO = str(HERE / "profiles" / "microcontroller-large.toml")


def micro_profile(name: str) -> str:
    return MICRO_PROFILE.get(name, LARGE_MICRO)


def official_tools(spec: dict, base: Path) -> dict[str, list[str]]:
    """The usual way, each tool its own command (and process): a TFLiteConverter script (phone and microcontroller),
    the tf2onnx CLI, the tensorflowjs_converter CLI. Shared with bench/jobs.py part (a)."""
    sm, cal = str(spec["saved_model"]), str(spec["calibration"])
    return {
        "tflite_script": [PY, str(HERE / "baseline_tflite.py"), sm, cal, str(base)],
        "tf2onnx_cli": [PY, "-m", "tf2onnx.convert", "--saved-model", sm, "--output", str(base / "model.onnx"), "--opset", "17"],
        "tensorflowjs_converter": [str(BIN / "tensorflowjs_converter"), "--input_format=tf_saved_model",
                                   "--output_format=tfjs_graph_model", "--quantize_float16=*", sm, str(base / "tfjs")],
    }


def bench_one_process_vs_tools(name: str, spec: dict, out: Path) -> dict:
    sm, cal = str(spec["saved_model"]), str(spec["calibration"])
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = out / "usual" / name
    shutil.rmtree(base, ignore_errors=True)
    tools = official_tools(spec, base)
    ours_dir = out / "edgezoo-convert-only" / name
    shutil.rmtree(ours_dir, ignore_errors=True)
    ours_cmd = [PY, str(HERE / "edgezoo_convert_only.py"), sm, cal, str(ours_dir), "phone", micro_profile(name), "browser", "onnx"]
    usual = measure_each(tools, logs, name, f"(a) {name}")
    ours = measure_each({"edgezoo": ours_cmd}, logs, name, f"(a) {name}")["edgezoo"]
    usual_seconds = sum(m.seconds for m in usual.values())
    usual_peak = max(m.peak_rss_mb for m in usual.values())
    return {
        "usual": {tool: vars(m) for tool, m in usual.items()},
        "edgezoo": vars(ours),
        "time_ratio": ours.seconds / usual_seconds,
        "peak_memory_ratio": ours.peak_rss_mb / usual_peak,
        "usual_seconds": usual_seconds,
        "usual_peak_rss_mb": usual_peak,
    }


def bench_full_run(name: str, spec: dict, out: Path) -> dict:
    """The whole edgezoo job, parity checks on every runtime included, for context next to (a)."""
    target_out = out / "edgezoo-full" / name
    command = [str(BIN / "edgezoo"), "convert", str(spec["saved_model"]), "--calibration", str(spec["calibration"]),
               # the microcontroller last: TFLM aborts on some int8 models (EfficientNetB0 here), which ends the run,
               # and (d) needs the other targets' artifacts
               "--target", "phone", "--target", "browser", "--target", "onnx", "--target", micro_profile(name),
               "--out", str(target_out), "--force", "--no-auto-fallback"]
    m = measure(command, log_path=str(out / "logs" / f"{name}-edgezoo-full.log"))
    return {"seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb, "exit_code": m.returncode}


def bench_overhead(name: str, spec: dict, out: Path, repeats: int) -> dict:
    import subprocess

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())  # the machine is shared: each figure carries its load
    result = subprocess.run(
        [PY, str(HERE / "overhead.py"), str(spec["saved_model"]), str(spec["calibration"]), str(out / "overhead" / name), str(repeats),
         micro_profile(name)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"(b) {name} failed:\n{result.stderr[-3000:]}")
    per_target = json.loads(result.stdout.strip().splitlines()[-1])
    bare = sum(v["bare_seconds"] for v in per_target.values())
    ours = sum(v["edgezoo_seconds"] for v in per_target.values())
    return {"targets": per_target, "ratio": ours / bare, "load_average": load}


def bench_sizes(name: str, spec: dict, out: Path, prune: bool) -> dict:
    import edgezoo

    model = edgezoo.load(str(spec["saved_model"]))
    sizes = {}
    artifacts = {}
    for quantization in ("float32", "float16", "int8"):
        result = edgezoo.convert(model, targets=("phone",), out_dir=out / "sizes" / name / quantization, quantize=quantization,
                                 calibration=spec["calibration"], force=True, auto_fallback=False)
        artifact = result.targets[0].artifact
        sizes[quantization] = artifact.size_bytes
        artifacts[quantization] = artifact
    row = {
        "float32_bytes": sizes["float32"],
        "float16_ratio": sizes["float16"] / sizes["float32"],
        "int8_ratio": sizes["int8"] / sizes["float32"],
    }
    if prune:
        pruned = edgezoo.convert(model, targets=("phone",), out_dir=out / "sizes" / name / "pruned", quantize="float32",
                                 calibration=spec["calibration"], force=True, prune=0.5)
        report = pruned.targets[0].report["pruning"]
        unpruned_gzip = sum(len(gzip.compress(f.read_bytes(), 9, mtime=0)) for f in artifacts["float32"].files)
        row.update({
            "reached_sparsity": report["reached_sparsity"],
            "gzip_unpruned_bytes": unpruned_gzip,
            "gzip_pruned_bytes": report["artifact_gzip_bytes"],
            "pruned_gzip_ratio": report["artifact_gzip_bytes"] / unpruned_gzip,
        })
    return row


def bench_latency(name: str, out: Path, runs: int) -> dict:
    from edgezoo.validate.latency import BenchOptions, bench

    folder = out / "edgezoo-full" / name
    rows = {}
    for target, artifact in (("phone", "phone/model.tflite"), ("onnx", "onnx/model.onnx"), ("browser", "browser/tfjs_model/model.json")):
        path = next(folder.glob(f"*/{artifact}"), None)
        if path is None:
            continue
        result = bench(path, BenchOptions(runs=runs, warmup=max(2, runs // 10), threads=1)).to_json()
        artifact_row = next(c for c in result["cases"] if c["runtime"] != "tensorflow")
        original_row = next(c for c in result["cases"] if c["runtime"] == "tensorflow")
        rows[target] = {
            "runtime": artifact_row["runtime"],
            "artifact_median_ms": artifact_row["median_ms"],
            "original_median_ms": original_row["median_ms"],
            "latency_ratio": artifact_row["median_ms"] / original_row["median_ms"],
        }
    return rows


def bench_int8_agreement(out: Path) -> dict:
    import edgezoo

    result = edgezoo.convert("digits-cnn", targets=("phone-int8", "microcontroller"), out_dir=out / "int8-agreement", force=True,
                             auto_fallback=False)
    return {
        t.target: {"runtime": t.parity.runtime, "top1_agreement": t.parity.outputs[0].metrics["top1_agreement"],
                   "num_samples": t.parity.num_samples}
        for t in result.targets
    }


def markdown(results: dict) -> str:
    lines = [f"Measured by `make bench` on {results['machine']} ({results['date']}); ratios, edgezoo over the usual way.", ""]
    lines += ["**(a) four targets in one process vs. each official tool in its own process** (goal: time at most 0.6)", "",
              "| model | usual way (s) | edgezoo (s) | time ratio | peak memory ratio | edgezoo full run with parity (s) |",
              "|---|---|---|---|---|---|"]
    for name, r in results["one_process"].items():
        full = results["full_run"].get(name, {})
        lines.append(f"| {name} | {r['usual_seconds']:.1f} | {r['edgezoo']['seconds']:.1f} | **{r['time_ratio']:.2f}** | "
                     f"{r['peak_memory_ratio']:.2f} | {full.get('seconds', float('nan')):.1f} |")
    lines += ["", "**(b) edgezoo's overhead over the bare converter calls, one process** (goal: at most 1.15)", "",
              "| model | phone | microcontroller | browser | onnx | all four | load average at its start |", "|---|---|---|---|---|---|---|"]
    for name, r in results["overhead"].items():
        t = r["targets"]
        lines.append(f"| {name} | {t['phone']['ratio']:.2f} | {t['microcontroller']['ratio']:.2f} | {t['browser']['ratio']:.2f} | "
                     f"{t['onnx']['ratio']:.2f} | **{r['ratio']:.2f}** | {r.get('load_average', 'not recorded')} |")
    lines += ["", "**(c) artifact sizes** (TFLite; goal: int8 at most 0.3 of float32)", "",
              "| model | float32 | float16 / float32 | int8 / float32 | gzip after 50% pruning / without |", "|---|---|---|---|---|"]
    for name, r in results["sizes"].items():
        pruned = f"{r['pruned_gzip_ratio']:.2f} (sparsity {r['reached_sparsity']:.1%})" if "pruned_gzip_ratio" in r else "not measured"
        lines.append(f"| {name} | {r['float32_bytes'] / 1e6:.2f} MB | {r['float16_ratio']:.2f} | **{r['int8_ratio']:.2f}** | {pruned} |")
    lines += ["", "**(d) latency, artifact on its runtime over the original in TensorFlow** (batch 1, 1 thread, median)", "",
              "| model | phone (LiteRT) | onnx (ONNX Runtime) | browser (TF.js in Node, cpu) |", "|---|---|---|---|"]
    for name, r in results["latency"].items():
        cell = lambda t: f"{r[t]['latency_ratio']:.2f} ({r[t]['artifact_median_ms']:.2f} vs {r[t]['original_median_ms']:.2f} ms)" if t in r else "n/a"  # noqa: E731
        lines.append(f"| {name} | {cell('phone')} | {cell('onnx')} | {cell('browser')} |")
    lines += ["", "**(e) int8 top-1 agreement with the float model, digits held-out split** (goal: at least 99%)", "",
              "| target | runtime | samples | top-1 agreement |", "|---|---|---|---|"]
    for target, r in results["int8_agreement"].items():
        lines.append(f"| {target} | {r['runtime']} | {r['num_samples']} | **{r['top1_agreement']:.1%}** |")
    return "\n".join(lines) + "\n"


def update_readme(table: str) -> None:
    readme = REPO / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(f"{head}{start}\n{table}{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="digits-cnn,mobilenet_v2,efficientnet_b0")
    parser.add_argument("--out", default=str(HERE / "out"))
    parser.add_argument("--repeats", type=int, default=2, help="repeats per call in (b); the fastest counts")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per latency case in (d)")
    parser.add_argument("--parts", default="a,b,c,d,e",
                        help="which parts to measure; the others are kept from bench/results.json (each part compares side by side on its own)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = Path(args.out)
    names = args.models.split(",")

    from models import prepare

    started = time.time()
    specs = {name: spec for name, spec in prepare(out / "models").items() if name in names}
    parts = set(args.parts.split(","))
    previous = json.loads((HERE / "results.json").read_text()) if parts != set("abcde") and (HERE / "results.json").exists() else {}
    results = {"one_process": {}, "full_run": {}, "overhead": {}, "sizes": {}, "latency": {}, **previous,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"), "models": names}
    for name, spec in specs.items():
        if "a" in parts:
            print(f"[{name}] (a) one process vs. official tools", flush=True)
            results["one_process"][name] = bench_one_process_vs_tools(name, spec, out)
        if "d" in parts or "a" in parts:
            print(f"[{name}] full edgezoo run with parity", flush=True)
            results["full_run"][name] = bench_full_run(name, spec, out)
        if "b" in parts:
            print(f"[{name}] (b) overhead in one process", flush=True)
            results["overhead"][name] = bench_overhead(name, spec, out, args.repeats)
        if "c" in parts:
            print(f"[{name}] (c) sizes", flush=True)
            results["sizes"][name] = bench_sizes(name, spec, out, prune=name != "efficientnet_b0")
        if "d" in parts:
            print(f"[{name}] (d) latency", flush=True)
            results["latency"][name] = bench_latency(name, out, args.runs if name == "digits-cnn" else max(5, args.runs // 3))
        write_results(results, parts, started)  # after each model: an interrupted run keeps what it measured
    if "e" in parts:
        print("(e) int8 agreement on digits", flush=True)
        results["int8_agreement"] = bench_int8_agreement(out)
    print(write_results(results, parts, started))


def write_results(results: dict, parts: set, started: float) -> str:
    """bench/results.json, bench/results.md and README's table from what is measured so far; returns the table."""
    results.setdefault("measured", {}).update({part: time.strftime("%Y-%m-%d %H:%M") for part in parts})
    results["seconds_last_run"] = time.time() - started
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (HERE / "results.md").write_text(table)
    update_readme(table)
    return table


if __name__ == "__main__":
    main()

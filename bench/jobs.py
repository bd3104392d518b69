"""The job runner and `edgezoo build`, side by side in one run. Writes bench/results-jobs.json and bench/results-jobs.md.

    .venv/bin/python bench/jobs.py [--models digits-cnn,mobilenet_v2,efficientnet_b0] [--parts a,f] [--skip-ray]

(a) phone, microcontroller, browser and onnx through the job runner (each target a job in a worker process, 2 at
    once, parity checked on every runtime; run as `edgezoo build` of a one-model matrix, the same jobs as `convert`)
    against each official tool in its own process (a TFLiteConverter script, the tf2onnx CLI, the
    tensorflowjs_converter CLI; conversion only): wall time, and the peak resident memory of the largest single process
    (the edgezoo process, or the largest worker as it reports its own peak). Next to it, edgezoo's four conversions in
    one process without parity (bench/edgezoo_convert_only.py), as in bench/run.py.
(f) a matrix of 12 jobs (3 small models x phone, onnx x 2 variants) with `edgezoo build`: one job at a time (the local
    executor, 1 worker), the local executor with 2 workers, Ray with 2 workers (the build starts its local Ray instance,
    which is counted), and a resumed rerun: a fresh build with one job made to abort (test hook), then the rerun that
    redoes only that cell; the rerun's time against the first run's.
"""

from __future__ import annotations

import argparse
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

from measure import measure  # noqa: E402

BIN = Path(sys.executable).parent
MATRIX = """targets = ["phone", "onnx"]
[variants.default]
[variants.int8]
quantize = "int8"
[[models]]
source = "digits-cnn"
[[models]]
name = "shapes-cnn"
source = "{repo}/tests/corpus/shapes-cnn/saved_model"
calibration = "{repo}/tests/corpus/shapes-cnn/data.npz"
[[models]]
name = "tiny-mobilenet"
source = "{repo}/tests/corpus/tiny-mobilenet/saved_model"
calibration = "{repo}/tests/corpus/tiny-mobilenet/data.npz"
"""
FAULT_CELL = "digits-cnn/onnx-int8"  # the one cell made to abort (test hook) in the first run of the resumed pair


def bench_runner_vs_tools(name: str, spec: dict, out: Path) -> dict:
    """The job runner on one model's four targets: `edgezoo build` of a one-model matrix, the same jobs as
    `edgezoo convert --target ... --jobs 2` (build adds the content keys and the build report), because its report
    gives each job's own time and peak memory, which docs/scale.md needs."""
    from run import bench_one_process_vs_tools, micro_profile

    base = bench_one_process_vs_tools(name, spec, out)  # the official tools, and edgezoo's conversions in one process
    folder = out / "runner" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    targets = ", ".join(json.dumps(t) for t in ("phone", micro_profile(name), "browser", "onnx"))
    (folder / "matrix.toml").write_text(f"targets = [{targets}]\n[options]\nauto_fallback = false\n[[models]]\n"
                                        f"source = {json.dumps(str(spec['saved_model']))}\ncalibration = {json.dumps(str(spec['calibration']))}\n")
    runner = _build(folder / "matrix.toml", folder / "out", f"{name}-runner", out / "logs", "--jobs", "2", "--force")
    report = json.loads((folder / "out" / "build-report.json").read_text())
    jobs = {c["target"]: {"status": c["status"], "seconds": c["seconds"], "peak_rss_mb": (c["peak_rss_bytes"] or 0) / 2**20,
                          "error": (c["error"] or "")[:200]} for c in report["cells"]}
    peak = max([runner["driver_peak_rss_mb"]] + [j["peak_rss_mb"] for j in jobs.values()])
    return {
        "usual_seconds": base["usual_seconds"],
        "usual_peak_rss_mb": base["usual_peak_rss_mb"],
        "one_process_seconds": base["edgezoo"]["seconds"],
        "one_process_peak_rss_mb": base["edgezoo"]["peak_rss_mb"],
        "runner_seconds": runner["seconds"],
        "runner_peak_rss_mb": peak,
        "runner_exit_code": runner["exit_code"],
        "runner_statuses": {t: j["status"] for t, j in jobs.items()},
        "jobs": jobs,
        "time_ratio": runner["seconds"] / base["usual_seconds"],
        "peak_memory_ratio": peak / base["usual_peak_rss_mb"],
    }


def _build(matrix: Path, out: Path, label: str, logs: Path, *flags: str, env: dict | None = None) -> dict:
    command = [str(BIN / "edgezoo"), "build", str(matrix), "--out", str(out), *flags]
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        m = measure(command, log_path=str(logs / f"matrix-{label}.log"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    report = json.loads((out / "build-report.json").read_text())
    peaks = [c["peak_rss_bytes"] for c in report["cells"] if c["peak_rss_bytes"]]
    seconds = [c["seconds"] for c in report["cells"] if c["seconds"] is not None and c["state"] == "built"]
    return {"seconds": m.seconds, "exit_code": m.returncode, "counts": report["counts"], "driver_peak_rss_mb": m.peak_rss_mb,
            "job_peak_rss_mb_max": max(peaks) / 2**20 if peaks else None, "job_seconds_mean": sum(seconds) / len(seconds) if seconds else None}


def bench_matrix(out: Path, skip_ray: bool) -> dict:
    folder = out / "matrix"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    matrix = folder / "matrix.toml"
    matrix.write_text(MATRIX.format(repo=REPO))
    runs = {}
    print("(f) serial: one job at a time", flush=True)
    runs["serial"] = _build(matrix, folder / "serial", "serial", logs, "--jobs", "1")
    print("(f) local executor, 2 workers", flush=True)
    runs["local_2"] = _build(matrix, folder / "local", "local", logs, "--jobs", "2")
    if not skip_ray:
        print("(f) Ray, 2 workers", flush=True)
        runs["ray_2"] = _build(matrix, folder / "ray", "ray", logs, "--jobs", "2", "--executor", "ray")
    print("(f) resumed: a first run with one job aborting, then the rerun", flush=True)
    runs["first_with_one_failure"] = _build(matrix, folder / "resume", "resume-first", logs, "--jobs", "2",
                                            env={"EDGEZOO_TEST_JOB_FAULT": f"{FAULT_CELL}:abort"})
    runs["rerun"] = _build(matrix, folder / "resume", "resume-rerun", logs, "--jobs", "2")
    runs["rerun_ratio"] = runs["rerun"]["seconds"] / runs["first_with_one_failure"]["seconds"]
    runs["local_2_over_serial"] = runs["local_2"]["seconds"] / runs["serial"]["seconds"]
    if "ray_2" in runs:
        runs["ray_2_over_serial"] = runs["ray_2"]["seconds"] / runs["serial"]["seconds"]
    return runs


def markdown(results: dict) -> str:
    lines = [f"Measured by `bench/jobs.py` on {results['machine']} ({results['date']}), side by side in one run.", ""]
    if results.get("runner"):
        lines += ["**(a) four targets through the job runner (2 workers, parity on every runtime) vs. each official tool in its own "
                  "process (conversion only)** (goal: time at most 0.6, peak memory of any one process at most 1.0)", "",
                  "| model | usual way (s) | runner, 2 workers (s) | time ratio | peak MB, usual / runner | memory ratio | "
                  "edgezoo one process, no parity (s) | targets |", "|---|---|---|---|---|---|---|---|"]
        for name, r in results["runner"].items():
            statuses = ", ".join(f"{t} {s}" for t, s in r["runner_statuses"].items())
            lines.append(f"| {name} | {r['usual_seconds']:.1f} | {r['runner_seconds']:.1f} | **{r['time_ratio']:.2f}** | "
                         f"{r['usual_peak_rss_mb']:.0f} / {r['runner_peak_rss_mb']:.0f} | **{r['peak_memory_ratio']:.2f}** | "
                         f"{r['one_process_seconds']:.1f} | {statuses} |")
    if results.get("matrix"):
        f = results["matrix"]
        lines += ["", "**(f) `edgezoo build`, a matrix of 12 jobs** (digits-cnn, shapes-cnn, tiny-mobilenet x phone, onnx x "
                  "default, int8)", "", "| run | wall (s) | cells built / skipped / failed | largest job peak (MB) | mean job (s) |",
                  "|---|---|---|---|---|"]
        labels = {"serial": "one job at a time (local, 1 worker)", "local_2": "local executor, 2 workers",
                  "ray_2": "Ray, 2 workers (starting Ray included)", "first_with_one_failure": "first run, one job aborted",
                  "rerun": "resumed rerun (redoes the aborted cell)"}
        for key, label in labels.items():
            if key in f:
                r, c = f[key], f[key]["counts"]
                peak = f"{r['job_peak_rss_mb_max']:.0f}" if r["job_peak_rss_mb_max"] else "-"
                mean = f"{r['job_seconds_mean']:.1f}" if r["job_seconds_mean"] else "-"
                lines.append(f"| {label} | {r['seconds']:.1f} | {c['built']} / {c['skipped']} / {c['failed']} | {peak} | {mean} |")
        lines += ["", f"local 2 workers / serial: **{f['local_2_over_serial']:.2f}**"
                  + (f"; Ray 2 workers / serial: **{f['ray_2_over_serial']:.2f}**" if "ray_2_over_serial" in f else "")
                  + f"; resumed rerun / first run: **{f['rerun_ratio']:.2f}**"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="digits-cnn,mobilenet_v2,efficientnet_b0")
    parser.add_argument("--out", default=str(HERE / "out"))
    parser.add_argument("--parts", default="a,f")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = Path(args.out)
    parts = set(args.parts.split(","))
    path = HERE / "results-jobs.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")})
    if "f" in parts:
        results["matrix"] = bench_matrix(out, args.skip_ray)
        path.write_text(json.dumps(results, indent=2) + "\n")
    if "a" in parts:
        from models import prepare

        specs = prepare(out / "models")
        results.setdefault("runner", {})
        for name in args.models.split(","):
            print(f"[{name}] (a) job runner vs. official tools", flush=True)
            results["runner"][name] = bench_runner_vs_tools(name, specs[name], out)
            path.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (HERE / "results-jobs.md").write_text(table)
    update_readme(table)
    print(table)


def update_readme(table: str) -> None:
    """README's job-runner table, between its own markers (bench/run.py keeps the ones of its table)."""
    readme = REPO / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench-jobs:start -->", "<!-- bench-jobs:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(f"{head}{start}\n{table}{end}{tail}")


if __name__ == "__main__":
    main()

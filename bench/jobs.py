"""The job runner and `edgezoo build`, side by side in one run. Writes bench/results-jobs.json and bench/results-jobs.md.

    PYTHONPATH=$PWD .venv/bin/python bench/jobs.py [--models digits-cnn,mobilenet_v2,efficientnet_b0] [--parts a,f]
        [--skip-ray] [--rounds 2] [--no-full-run]

(a) phone, microcontroller (bench/profiles/microcontroller-large.toml for the ImageNet-size models), browser and onnx:
    the job runner doing the official tools' work -- conversion only (bench/convert_only.py through
    bench/runner_convert_only.py): worker processes started first, the parent loading the model and preparing the
    calibration data once into the one file every job reads, 2 jobs at once, each job preparing and converting its
    target (fixed batch, op check) and nothing else -- against each official tool in its own process, one after the
    other (a TFLiteConverter script, the tf2onnx CLI, the tensorflowjs_converter CLI; bench/run.py's part (a)).
    --rounds N interleaves N rounds (tools, runner, tools, runner...) and keeps each side's fastest, with the median
    ratio beside it and the load average at the start of every round. Memory: the peak resident memory of the largest
    single process (a tool; the runner's parent, or its largest worker as it reports its own peak). For context, once
    (unless --no-full-run): the full job through the runner -- parity on every runtime, reports -- run as `edgezoo
    build` of a one-model matrix, the same jobs as `edgezoo convert --target ... --jobs 2`.
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

from measure import measure, measure_each  # noqa: E402

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
JOB_FAULTS = {"EDGEZOO_JOB_HOOK": f"{REPO / 'tests' / 'job_faults.py'}:inject"}  # the workers' seam (edgezoo/jobs/worker.py)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them: the machine is shared, so each figure carries its own."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def tools_round(name: str, spec: dict, out: Path) -> dict:
    """Each official tool in its own process, one after the other (bench/run.py part (a)): their summed wall time and
    the peak memory of the largest."""
    from run import official_tools

    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = out / "usual" / name
    shutil.rmtree(base, ignore_errors=True)
    load = load_average()
    usual = measure_each(official_tools(spec, base), logs, name, f"(a) {name}")
    return {"seconds": sum(m.seconds for m in usual.values()), "peak_rss_mb": max(m.peak_rss_mb for m in usual.values()),
            "tools": {tool: vars(m) for tool, m in usual.items()}, "load_average": load}


def runner_round(name: str, spec: dict, out: Path) -> dict:
    """The job runner doing the tools' work: conversion only, 2 worker processes (bench/runner_convert_only.py); wall time,
    and the peak memory of the largest process (the parent, or the largest worker as it reports its own peak)."""
    from run import micro_profile

    folder = out / "runner-convert-only" / name
    shutil.rmtree(folder, ignore_errors=True)
    log = out / "logs" / f"{name}-runner-convert-only.log"
    load = load_average()
    command = [sys.executable, str(HERE / "runner_convert_only.py"), str(spec["saved_model"]), str(spec["calibration"]), str(folder),
               "phone", micro_profile(name), "browser", "onnx"]
    m = measure_each({"runner-convert-only": command}, log.parent, name, f"(a) {name}")["runner-convert-only"]
    jobs = json.loads((folder / "jobs.json").read_text())
    failed = {t: j["failure"] for t, j in jobs.items() if j["failure"]}
    if failed:
        raise SystemExit(f"(a) {name}: conversion-only jobs failed: {failed}")
    return {"seconds": m.seconds, "parent_peak_rss_mb": m.peak_rss_mb,
            "peak_rss_mb": max([m.peak_rss_mb] + [j["peak_rss_mb"] for j in jobs.values()]), "jobs": jobs, "load_average": load}


def bench_runner_vs_tools(name: str, spec: dict, out: Path, rounds: int, full_run: bool) -> dict:
    """Interleaved rounds -- tools, runner, tools, runner... -- so that drift in the machine's load hits both sides alike;
    each side keeps its fastest round (the medians are kept too). Memory: the largest single process of each side, its
    highest over the rounds. Then, for context, the full job (parity on every runtime, reports) through `edgezoo build`."""
    import statistics

    tools, runner = [], []
    for index in range(rounds):
        print(f"[{name}] (a) round {index + 1}/{rounds}: official tools", flush=True)
        tools.append(tools_round(name, spec, out))
        print(f"[{name}] (a) round {index + 1}/{rounds}: job runner, conversion only", flush=True)
        runner.append(runner_round(name, spec, out))
    best_tools, best_runner = min(r["seconds"] for r in tools), min(r["seconds"] for r in runner)
    tools_peak, runner_peak = max(r["peak_rss_mb"] for r in tools), max(r["peak_rss_mb"] for r in runner)
    row = {
        "rounds": rounds,
        "tools_rounds": tools,
        "runner_rounds": runner,
        "usual_seconds": best_tools,
        "usual_seconds_median": statistics.median(r["seconds"] for r in tools),
        "usual_peak_rss_mb": tools_peak,
        "runner_seconds": best_runner,
        "runner_seconds_median": statistics.median(r["seconds"] for r in runner),
        "runner_peak_rss_mb": runner_peak,
        "time_ratio": best_runner / best_tools,
        "time_ratio_median": statistics.median(r["seconds"] for r in runner) / statistics.median(r["seconds"] for r in tools),
        "peak_memory_ratio": runner_peak / tools_peak,
        "load_averages": [r["load_average"] for pair in zip(tools, runner) for r in pair],
    }
    if full_run:
        print(f"[{name}] (a) context: the full job through the runner (parity, reports)", flush=True)
        row["full_run"] = full_runner_run(name, spec, out)
    return row


def full_runner_run(name: str, spec: dict, out: Path) -> dict:
    """The runner on one model's four targets with everything a convert does (parity on four runtimes, reports): `edgezoo
    build` of a one-model matrix, the same jobs as `edgezoo convert --target ... --jobs 2`, because its report gives each
    job's own time and peak memory, which docs/scale.md needs."""
    from run import micro_profile

    folder = out / "runner" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    targets = ", ".join(json.dumps(t) for t in ("phone", micro_profile(name), "browser", "onnx"))
    (folder / "matrix.toml").write_text(f"targets = [{targets}]\n[options]\nauto_fallback = false\n[[models]]\n"
                                        f"source = {json.dumps(str(spec['saved_model']))}\ncalibration = {json.dumps(str(spec['calibration']))}\n")
    load = load_average()
    runner = _build(folder / "matrix.toml", folder / "out", f"{name}-runner", out / "logs", "--jobs", "2", "--force")
    report = json.loads((folder / "out" / "build-report.json").read_text())
    jobs = {Path(c["target"]).stem: {"status": c["status"], "seconds": c["seconds"], "peak_rss_mb": (c["peak_rss_bytes"] or 0) / 2**20,
                                     "error": (c["error"] or "")[:200]} for c in report["cells"]}
    peak = max([runner["driver_peak_rss_mb"]] + [j["peak_rss_mb"] for j in jobs.values()])
    return {"seconds": runner["seconds"], "peak_rss_mb": peak, "exit_code": runner["exit_code"], "jobs": jobs, "load_average": load}


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
                                            env={"EDGEZOO_TEST_JOB_FAULT": f"{FAULT_CELL}:abort", **JOB_FAULTS})
    runs["rerun"] = _build(matrix, folder / "resume", "resume-rerun", logs, "--jobs", "2")
    runs["rerun_ratio"] = runs["rerun"]["seconds"] / runs["first_with_one_failure"]["seconds"]
    runs["local_2_over_serial"] = runs["local_2"]["seconds"] / runs["serial"]["seconds"]
    if "ray_2" in runs:
        runs["ray_2_over_serial"] = runs["ray_2"]["seconds"] / runs["serial"]["seconds"]
    return runs


def markdown(results: dict) -> str:
    lines = [f"Measured by `bench/jobs.py` on {results['machine']} ({results['date']}), side by side in one run.", ""]
    if results.get("runner"):
        lines += ["**(a) four targets (phone, microcontroller, browser, onnx): the job runner doing the tools' work -- conversion "
                  "only, 2 worker processes, the parent loading and preparing the model once -- vs. each official tool in its "
                  "own process** (goal: time at most 0.6, peak memory of any one process at most 1.0). Rounds interleaved "
                  "(tools, runner, tools, runner...); each side's fastest round, the median ratio beside it; memory: the "
                  "largest single process of each side over the rounds.", "",
                  "| model | rounds | official tools (s) | runner, conversion only (s) | time ratio (median) | peak MB, tools / runner | "
                  "memory ratio | full runner run with parity (s) | load averages (1, 5, 15 min) at each round |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, r in results["runner"].items():
            full = r.get("full_run")
            full_cell = (f"{full['seconds']:.1f} (peak {full['peak_rss_mb']:.0f} MB; "
                         + ", ".join(f"{t} {j['status']}" for t, j in full["jobs"].items()) + ")") if full else "not run"
            loads = "; ".join(r["load_averages"])
            lines.append(f"| {name} | {r['rounds']} | {r['usual_seconds']:.1f} | {r['runner_seconds']:.1f} | **{r['time_ratio']:.2f}** "
                         f"({r['time_ratio_median']:.2f}) | {r['usual_peak_rss_mb']:.0f} / {r['runner_peak_rss_mb']:.0f} | "
                         f"**{r['peak_memory_ratio']:.2f}** | {full_cell} | {loads} |")
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
    parser.add_argument("--rounds", type=int, default=2, help="(a): interleaved rounds of tools and runner; each side's fastest counts")
    parser.add_argument("--no-full-run", action="store_true", help="(a): leave out the full runner run with parity (context only)")
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
        if not isinstance(next(iter(results.get("runner", {}).values()), {}).get("rounds"), int):
            results["runner"] = {}  # rows of the earlier layout (runner with parity against the tools) are not kept
        results.setdefault("runner", {})
        for name in args.models.split(","):
            print(f"[{name}] (a) job runner vs. official tools", flush=True)
            results["runner"][name] = bench_runner_vs_tools(name, specs[name], out, args.rounds, not args.no_full_run)
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

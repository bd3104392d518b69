"""`edgezoo build`: every cell of a matrix (model x target x variant) a job, resumable.

Per model the parent loads it once; per set of data options it prepares the data once, computes each cell's content
key, skips the cells whose folder is intact (keys.py), and only where a cell is left to do runs the original on the
held-out inputs and writes what the model's jobs share (jobs/package.py). Then every job left runs on the executor
(`local` worker processes or `ray`), the model folders get their run summary, and OUT gets build-report.json and
build-report.html. A failure of one model's preparation (a source not found, bad data) fails that model's cells alone.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgezoo import _workspace
from edgezoo.matrix import keys
from edgezoo.matrix.schema import DEFAULT_VARIANT, Matrix, ModelEntry, load_matrix
from edgezoo.errors import EdgezooError, UsageError
from edgezoo.jobs import Job, JobOutcome, memory, package, run_jobs
from edgezoo.output import OutputTree, safe_name

# Options that differ only per job: cells that differ only in these share one prepared model, data and reference.
JOB_FIELDS = ("quantize", "keep_float", "auto_fallback", "explain_quantization", "auto_prefer", "suggest")


@dataclass(frozen=True)
class BuildOptions:
    out_dir: Path | None = None  # None: the matrix's `out`, else ./build
    force: bool = False  # redo every cell, intact or not
    jobs: int | None = None  # jobs at once; None: the cores
    max_memory: int | str | None = None  # bytes or "8G"; None: 90% of the free memory
    job_timeout: float | None = None  # seconds per job
    executor: str = "local"
    ray_address: str | None = None
    offline: bool = False
    cache_dir: Path | None = None
    mirror: str | None = None

    def __post_init__(self):
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", Path(self.out_dir))
        # The executor fields are checked as ConvertOptions checks them.
        self.convert_options(targets=("phone",))

    def convert_options(self, **fields):
        from edgezoo.options import ConvertOptions

        return ConvertOptions(jobs=self.jobs, max_memory=self.max_memory, job_timeout=self.job_timeout, executor=self.executor,
                              ray_address=self.ray_address, offline=self.offline, cache_dir=self.cache_dir, mirror=self.mirror,
                              force=self.force, **fields)


@dataclass
class Cell:
    """One model x target x variant of the matrix, and what became of it."""

    model: str  # the model folder's name
    source: str
    target: str  # the profile as the matrix names it
    variant: str
    folder: str  # the target folder: <profile name>[-<variant>]
    state: str = "pending"  # built, skipped (intact from an earlier build), failed, or not run (interrupted)
    key: str | None = None
    report: dict | None = None
    error: str | None = None
    exit_code: int | None = None
    status: str | None = None
    seconds: float | None = None
    peak_rss_bytes: int | None = None
    worker: str | None = None

    @property
    def name(self) -> str:
        return f"{self.model}/{self.folder}"


@dataclass
class BuildResult:
    out_dir: Path
    cells: list[Cell]
    seconds: float
    executor: str
    report_path: Path | None = None
    html_path: Path | None = None
    summary: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return max((c.exit_code or 0 for c in self.cells), default=0)

    @property
    def passed(self) -> bool:
        return all(c.exit_code == 0 for c in self.cells)

    def to_json(self) -> dict:
        return self.summary


Events = Callable[[dict], None]


def build(matrix: Matrix | str | Path, options: BuildOptions | None = None, on_event: Events | None = None) -> BuildResult:
    options = options or BuildOptions()
    matrix = matrix if isinstance(matrix, Matrix) else load_matrix(matrix)
    on_event = on_event or (lambda event: None)
    out_dir = options.out_dir or matrix.out or Path("build")
    started = time.monotonic()
    cells: list[Cell] = []
    jobs: list[tuple[Job, Cell]] = []
    server = None  # the local job server, started once there is work: it imports TensorFlow while the next models are prepared
    try:
        taken: dict[str, str] = {}  # model folder -> the matrix entry that writes it
        for entry in matrix.models:
            _prepare_model(entry, matrix, options, out_dir, cells, jobs, on_event, taken)
            if jobs and server is None and options.executor == "local":
                from edgezoo.jobs import local

                server = local.start_server(_settings(options, sum(len(m.targets) * len(m.variants) for m in matrix.models)))
        return _run(matrix, options, out_dir, cells, jobs, server, started, on_event)
    finally:
        if server is not None:
            server.close()


def _run(matrix, options, out_dir, cells, jobs, server, started, on_event) -> BuildResult:
    from edgezoo.matrix.report import write_build_report

    result = BuildResult(out_dir, cells, 0.0, options.executor)
    on_event({"event": "build_started", "cells": len(cells), "to_build": len(jobs),
              "skipped": sum(c.state == "skipped" for c in cells), "failed_before_running": sum(c.state == "failed" for c in cells)})
    try:
        if jobs:
            settings = _settings(options, len(jobs))
            by_name = {job.name: cell for job, cell in jobs}

            def job_event(kind: str, job: Job, outcome: JobOutcome | None) -> None:
                cell = by_name[job.name]
                if outcome is not None:
                    _record(cell, outcome)
                    on_event({"event": "job_finished", **_event_fields(cell)})
                else:
                    cell.state = "running"
                    on_event({"event": "job_started", "cell": cell.name, "model": cell.model, "target": cell.target,
                              "variant": cell.variant})

            run_jobs(options.executor, [job for job, _ in jobs], settings, job_event, server)
    finally:  # also when interrupted: the report says which cells were finished and which were not run
        for cell in cells:
            if cell.state in ("pending", "running"):
                cell.state, cell.status, cell.error = "not run", "not run", "the build was interrupted before this cell finished"
        result.seconds = time.monotonic() - started
        _write_model_summaries(cells, out_dir)
        write_build_report(result, matrix, options)
    on_event({"event": "build_finished", "exit_code": result.exit_code, "passed": result.passed, "report": str(result.report_path),
              "html": str(result.html_path), "seconds": result.seconds, **result.summary["counts"]})
    return result


def _settings(options: BuildOptions, count: int):
    from edgezoo.jobs.runner import settings_for

    return settings_for(options.convert_options(targets=("phone",)), count)


def _prepare_model(entry: ModelEntry, matrix: Matrix, options: BuildOptions, out_dir: Path, cells: list, jobs: list, on_event,
                   taken: dict[str, str]) -> None:
    """Load the model once, then per group of cells that share data options: keys, skips, reference, jobs."""
    from edgezoo.pipeline import resolve_targets
    from edgezoo.zoo import load

    mine: list[Cell] = []
    try:
        profiles = {name: resolve_targets((name,))[0] for name in entry.targets}
        for variant in entry.variants:
            for target, profile in profiles.items():
                folder = profile.name if variant == DEFAULT_VARIANT else f"{profile.name}-{variant}"
                clash = next((c for c in mine if c.folder == folder), None)
                if clash is not None:
                    raise UsageError(f"{entry.where}: target '{target}' variant '{variant}' and target '{clash.target}' variant "
                                     f"'{clash.variant}' would both write to the folder {folder}/; rename a profile or a variant.")
                mine.append(Cell(entry.name or safe_name(entry.source), entry.source, target, variant, folder))
        base = options.convert_options(targets=("phone",), calibration=entry.calibration, trust_model=entry.trust_model, out_dir=out_dir)
        model = load(entry.source, base.load_options())
    except Exception as exc:  # this model's cells fail; the other models go on
        exc = _as_error(exc, f"{entry.where}: loading the model")
        _fail_all(mine or [Cell(entry.name or safe_name(entry.source), entry.source, t, v, t) for v in entry.variants for t in entry.targets],
                  exc, entry, cells)
        return
    name = entry.name or safe_name(model.name)
    for cell in mine:
        cell.model = name
    if name in taken:
        _fail_all(mine, UsageError(f"{entry.where} and {taken[name]} would both write to {out_dir / name}/; give one of them "
                                   f"name = \"...\" in the matrix."), entry, cells)
        return
    taken[name] = entry.where
    groups: dict = {}
    for cell in mine:
        try:
            cell_options = dataclasses.replace(base, targets=(cell.target,), **entry.options, **matrix.variants[cell.variant])
        except (EdgezooError, TypeError, ValueError) as exc:
            _fail_all([cell], exc if isinstance(exc, EdgezooError) else UsageError(f"{entry.where}: {exc}"), entry, cells)
            continue
        group = dataclasses.replace(cell_options, targets=("phone",), quantize=None, keep_float=(), auto_fallback=True, explain_quantization=False,
                                    auto_prefer="size", suggest=True)
        groups.setdefault(group, []).append((cell, cell_options))
    for group_options, members in groups.items():
        try:
            _prepare_group(model, name, group_options, members, profiles, entry, options, out_dir, jobs, on_event)
        except Exception as exc:  # bad data, the original failing on it...: these cells fail, the others go on
            _fail_all([cell for cell, _ in members if cell.state == "pending"], _as_error(exc, f"{entry.where}: preparing the data"), entry, [])
        cells.extend(cell for cell, _ in members)


def _prepare_group(model, name, group_options, members, profiles, entry, options, out_dir, jobs, on_event) -> None:
    from edgezoo.pipeline import prepare, prepare_data
    from edgezoo.target_run import Feedback
    from edgezoo.targets import static_shape

    group_profiles = [profiles[cell.target] for cell, _ in members]
    shapes = static_shape.shapes_for_data(model, group_profiles, group_options.input_shapes)
    tree = OutputTree(out_dir, name, True)
    tree.check([])  # the folder can be written; staging left by dead processes removed
    data = prepare_data(model, group_options, shapes)
    todo = []
    for cell, cell_options in members:
        cell.key = keys.content_key(model=model, profile=profiles[cell.target], options=cell_options, data=data, folder=cell.folder)
        report = None if options.force else keys.intact(tree.final_dir(cell.folder), cell.key)
        if report is not None:
            _skipped(cell, report)
            on_event({"event": "cell_skipped", **_event_fields(cell)})
        else:
            todo.append((cell, cell_options))
    if not todo:
        return
    shared = prepare(model, group_options, data, Feedback())  # pruning and the reference, as `convert` makes them
    converted, reference, pruning = shared.model, shared.reference, shared.pruning
    prepared = package.write(package.prepared_for(converted, data, reference, pruning), _workspace.scratch_dir("prepared-") / "prepared.pickle")
    expected = memory.parse_size(entry.memory, "memory") if entry.memory is not None else memory.expected_peak(converted.saved_model_dir)
    dirs = tuple(dict.fromkeys(m.saved_model_dir for m in (model, converted)))
    for cell, cell_options in todo:
        job = Job(name=cell.name, folder=cell.folder, profile=profiles[cell.target], options=cell_options, prepared=prepared,
                  out_dir=out_dir, model_name=name, force=True, expected_peak=expected, key=cell.key, saved_model_dirs=dirs)
        jobs.append((job, cell))


def _as_error(exc: Exception, what: str) -> EdgezooError:
    """An EdgezooError as it is; anything else (an unwrapped third-party failure) as a ConversionError that says where."""
    if isinstance(exc, EdgezooError):
        return exc
    from edgezoo.errors import ConversionError

    error = ConversionError(f"{what} failed unexpectedly: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _fail_all(cells: list[Cell], exc: Exception, entry: ModelEntry, into: list) -> None:
    for cell in cells:
        cell.state, cell.error = "failed", str(exc)
        cell.exit_code = getattr(exc, "exit_code", 4)
        cell.status = {2: "bad input", 3: "refused"}.get(cell.exit_code, "failed")
    into.extend(cells)


def _skipped(cell: Cell, report: dict) -> None:
    cell.state, cell.report = "skipped", report
    parity = report["parity"]
    cell.exit_code = 4 if parity["error"] else 0 if report["passed"] else 1
    cell.status = "runtime failed" if parity["error"] else "passed" if report["passed"] else "parity failed"


def _record(cell: Cell, outcome: JobOutcome) -> None:
    result = outcome.result
    cell.seconds, cell.peak_rss_bytes, cell.worker = outcome.seconds, outcome.peak_rss_bytes, outcome.worker
    cell.exit_code, cell.status = result.exit_code, result.status
    if result.failure is not None:
        cell.state, cell.error = "failed", result.failure.message
    else:
        cell.state, cell.report = "built", result.report


def _event_fields(cell: Cell) -> dict:
    return {"cell": cell.name, "model": cell.model, "target": cell.target, "variant": cell.variant, "state": cell.state,
            "status": cell.status, "exit_code": cell.exit_code, "error": cell.error, "seconds": cell.seconds}


def _write_model_summaries(cells: list[Cell], out_dir: Path) -> None:
    """OUT/<model>/report.json and report.html: the model's cells side by side, as convert writes them."""
    from edgezoo.reports.summary_page import write_summary_html
    from edgezoo.reports.json_report import run_summary, write_json

    by_model: dict[str, list[Cell]] = {}
    for cell in cells:
        by_model.setdefault(cell.model, []).append(cell)
    for name, mine in by_model.items():
        model_dir = out_dir / name
        made = [c for c in mine if c.report is not None]
        if not model_dir.is_dir() or not made:
            continue
        rows = [(c.folder, model_dir / c.folder, c.report) if c.report is not None else
                {"target": c.folder, "failed": True, "status": c.status, "exit_code": c.exit_code or 0, "error": c.error,
                 "format": None, "quantization": None, "runtime": None} for c in mine]
        summary = run_summary(_ModelOfReport(made[0].report["model"]), rows, model_dir, made[0].report["golden"])
        write_json(model_dir / "report.json", summary)
        write_summary_html(model_dir, summary)


@dataclass(frozen=True)
class _ModelOfReport:
    """What run_summary reads of a model, from a cell's report (a skipped cell's model was not run)."""

    data: dict

    def to_json(self) -> dict:
        return self.data

    @property
    def name(self) -> str:
        return self.data["name"]

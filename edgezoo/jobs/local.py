"""The local executor: each job in a fresh worker process on this machine (`python -m edgezoo.jobs.worker`).

Up to `settings.jobs` jobs run at once, and a job is admitted only while the expected peaks of the running jobs and
its own fit `settings.max_memory` (one job always runs, however large). Workers are started ahead of their jobs, so
TensorFlow's import overlaps the work before them; each still runs exactly one job. A worker that ends without an
outcome (a crash, an abort, the out-of-memory killer) or runs past the timeout is a failed job: exit 4, its reason
recorded, its staging folder removed, and the other jobs go on. Plain subprocesses, not ProcessPoolExecutor, whose
max_tasks_per_child=1 can hang on Python 3.11 (CPython gh-115634).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edgezoo import _workspace
from edgezoo.jobs import package
from edgezoo.jobs.package import Job, JobOutcome

POLL_SECONDS = 0.05
STOP_GRACE_SECONDS = 10.0  # for a stopped worker to remove its staging folder and stop its own children


@dataclass
class _Running:
    job: Job
    process: subprocess.Popen
    outcome_path: Path
    log_path: Path
    started: float
    timed_out: bool = False


def start_workers(count: int, settings) -> list[tuple[subprocess.Popen, Path]]:
    """Workers started before their jobs are known: they import TensorFlow while the parent loads and prepares the
    model. Give them to run(); release() ends those it did not use."""
    folder = _workspace.scratch_dir("workers-")
    return [_start_worker(folder, settings) for _ in range(count)]


def release(idle: list[tuple[subprocess.Popen, Path]]) -> None:
    while idle:
        process, _ = idle.pop()
        with contextlib.suppress(OSError):
            process.stdin.close()  # no job for it: it exits
        _reap(process)


def run(jobs: list[Job], settings, on_event, warm: list | None = None) -> list[JobOutcome]:
    folder = _workspace.scratch_dir("jobs-")
    pending = collections.deque(enumerate(jobs))
    running: dict[int, _Running] = {}
    idle: list[tuple[subprocess.Popen, Path]] = warm if warm is not None else []
    outcomes: dict[int, JobOutcome] = {}
    try:
        while pending or running:
            while pending and len(running) < settings.jobs and _fits(pending[0][1], running, settings.max_memory):
                index, job = pending.popleft()
                process, log_path = idle.pop() if idle else _start_worker(folder, settings)
                running[index] = _hand_over(job, index, process, log_path, folder)
                on_event("started", job, None)
            while len(idle) < min(settings.jobs, len(pending)):
                idle.append(_start_worker(folder, settings))  # warm: it imports TensorFlow while the running jobs work
            for index, entry in list(running.items()):
                if entry.process.poll() is None:
                    if settings.timeout is not None and time.monotonic() - entry.started > settings.timeout and not entry.timed_out:
                        entry.timed_out = True
                        _stop(entry.process)
                    continue
                del running[index]
                outcomes[index] = _collect(entry, settings)
                on_event("finished", entry.job, outcomes[index])
            time.sleep(POLL_SECONDS)
    except BaseException:  # SIGINT/SIGTERM in the parent: every worker unwinds its staging folder, nothing half-made stays
        for process in [entry.process for entry in running.values()] + [process for process, _ in idle]:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for entry in running.values():
            _reap(entry.process)
        for entry in running.values():
            _remove_stale(entry.job)
        raise
    finally:
        release(idle)
    return [outcomes[index] for index in range(len(jobs))]


def _fits(job: Job, running: dict[int, _Running], budget: int) -> bool:
    return not running or sum(r.job.expected_peak for r in running.values()) + job.expected_peak <= budget


def _start_worker(folder: Path, settings) -> tuple[subprocess.Popen, Path]:
    from edgezoo.jobs.worker import thread_environment

    env = {**os.environ, **thread_environment(settings.threads_per_job)}
    env["EDGEZOO_VERBOSE"] = "1" if settings.verbose else "0"
    log_path = Path(folder) / f"worker-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "edgezoo.jobs.worker"], stdin=subprocess.PIPE, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, text=True)
    return process, log_path


def _hand_over(job: Job, index: int, process: subprocess.Popen, log_path: Path, folder: Path) -> _Running:
    job_path = package.write(job, Path(folder) / f"job-{index}.pickle")
    outcome_path = Path(folder) / f"outcome-{index}.pickle"
    try:
        process.stdin.write(f"{job_path}\t{outcome_path}\n")
        process.stdin.close()
    except OSError:  # the warm worker died before its job came: its exit is collected as this job's failure
        pass
    return _Running(job, process, outcome_path, log_path, time.monotonic())


def _collect(entry: _Running, settings) -> JobOutcome:
    seconds = time.monotonic() - entry.started
    if entry.process.returncode == 0 and entry.outcome_path.exists():
        outcome = package.read(entry.outcome_path)
        if settings.verbose:
            sys.stderr.write(entry.log_path.read_text(errors="replace"))
        return outcome
    reason = _why(entry, settings)
    notes = _remove_stale(entry.job)
    return failed_outcome(entry.job, reason, seconds, f"pid {entry.process.pid}", notes)


def failed_outcome(job: Job, reason: str, seconds: float | None, worker: str | None, notes: tuple[str, ...] = ()) -> JobOutcome:
    """The outcome of a job whose worker gave none: a ConversionError (exit 4) that says why, for that job alone."""
    from edgezoo.errors import ConversionError
    from edgezoo.pipeline import TargetFailure, TargetResult

    quantization = (job.options.quantize or job.profile.quantization).value
    error = ConversionError(f"{job.name}: {reason}; nothing was published for it, and the other jobs went on.")
    result = TargetResult(job.folder, None, None, None, None, TargetFailure(error, quantization), job.profile)
    return JobOutcome(job.name, result, (f"{job.folder}: failed (exit 4): {error}",), seconds, None, worker, notes)


def _why(entry: _Running, settings) -> str:
    code = entry.process.returncode
    if entry.timed_out:
        return f"the job ran longer than its timeout of {settings.timeout:g} s and its worker process was stopped"
    tail = " ".join(entry.log_path.read_text(errors="replace").strip().splitlines()[-3:])[-400:]
    said = f" (its last output: {tail})" if tail else ""
    return f"its worker process {worker_death(code)}{said}"


def worker_death(code: int) -> str:
    """How a worker that left no outcome ended, in words, from its exit status."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        why = {"SIGABRT": "a converter or runtime called abort()", "SIGSEGV": "a crash in native code",
               "SIGKILL": "the kernel's out-of-memory killer, or a kill from outside",
               "SIGBUS": "a crash in native code"}.get(name, "a signal")
        return f"was ended by {name} ({why})"
    return f"exited with code {code} without a result"


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    _reap(process)


def _reap(process: subprocess.Popen) -> None:
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


def _remove_stale(job: Job) -> tuple[str, ...]:
    """The staging folder a dead worker left (its owner file names the dead pid)."""
    from edgezoo.output import OutputTree

    return tuple(OutputTree(job.out_dir, job.model_name, job.force).remove_stale())

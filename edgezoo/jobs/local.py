"""The local executor: each job in a fresh worker process on this machine, forked by the run's job server.

Up to `settings.jobs` jobs run at once, and a job is admitted only while the expected peaks of the running jobs and
its own fit `settings.max_memory` (one job always runs, however large). One job server per run
(edgezoo/jobs/forkserver.py) imports TensorFlow and the converters once, started as early as the run can (so its
import overlaps the parent's loading), and forks one worker process per job, which runs exactly that job. A worker
that ends without an outcome (a crash, an abort, the out-of-memory killer) or runs past the timeout is a failed job:
exit 4, its reason recorded, its staging folder removed, and the other jobs go on; so is every job of a job server
that ends while they run (the jobs left start in a new one). Plain processes, not ProcessPoolExecutor, whose
max_tasks_per_child=1 can hang on Python 3.11 (CPython gh-115634).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgezoo import _processes, _workspace
from edgezoo.jobs import package
from edgezoo.jobs.forkserver import STOP_GRACE_SECONDS
from edgezoo.jobs.package import Job, JobOutcome

POLL_SECONDS = 0.05


@dataclass
class _Running:
    job: Job
    process: "ForkedWorker"
    outcome_path: Path
    log_path: Path
    started: float
    timed_out: bool = False


class ForkedWorker:
    """A job's worker process as run() sees it, in place of a Popen (poll, returncode, pid, send_signal, kill, wait):
    the job server forked it, reaps it and reports its pid and exit status; signals go straight to its pid."""

    def __init__(self, server: "JobServer"):
        self.server = server
        self.pid: int | None = None  # once the server reports it started
        self.returncode: int | None = None
        self.lost: str | None = None  # why, when the job server ended before reporting this worker's exit
        self._start_time: int | None = None  # of its pid (a pid alone can be reused once the worker is reaped)
        self._signal: int | None = None  # sent before it started: delivered as it starts
        self._lost_at: float | None = None
        self._lock = threading.Lock()

    def _started(self, pid: int) -> None:
        with self._lock:
            self.pid, self._start_time = pid, _processes.start_time(pid)
            if self._signal is not None:
                self._kill(self._signal)

    def _exited(self, status: int) -> None:
        with self._lock:
            self.returncode = status

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self.returncode is None and self.lost is None:
                self.lost, self._lost_at = reason, time.monotonic()

    def _alive(self) -> bool:
        return self.pid is not None and self._start_time is not None and _processes.start_time(self.pid) == self._start_time \
            and _processes._running(self.pid)

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None and self.lost is not None:
                # The kernel sent it SIGTERM as the server ended (PR_SET_PDEATHSIG); what still runs after the grace goes.
                if not self._alive():
                    self.returncode = 1  # its real status went with the server; `lost` says what happened
                elif time.monotonic() - self._lost_at > STOP_GRACE_SECONDS:
                    self._kill(signal.SIGKILL)
            return self.returncode

    def send_signal(self, signum: int) -> None:
        with self._lock:
            if self.returncode is None:
                self._signal = signum
                if self.pid is not None:
                    self._kill(signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"job worker {self.pid}", timeout)
            time.sleep(POLL_SECONDS)
        return self.returncode

    def _kill(self, signum: int) -> None:
        if self._alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)


class JobServer:
    """The parent's end of a job server process: jobs go in on its stdin; a thread reads its events."""

    def __init__(self, settings):
        from edgezoo.jobs.worker import thread_environment

        self.folder = _workspace.scratch_dir("jobs-")
        self.log_path = self.folder / "job-server.log"
        self.threads, self.verbose = settings.threads_per_job, settings.verbose
        env = {**os.environ, **thread_environment(self.threads), "EDGEZOO_VERBOSE": "1" if settings.verbose else "0"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "edgezoo.jobs.forkserver"], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log, env=env, text=True, bufsize=1)
        self.ready = False  # it has imported what jobs need and reads its stdin
        self.ended: str | None = None  # why, once its stdout closed
        self._workers: dict[str, ForkedWorker] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="edgezoo-job-server", daemon=True)
        self._reader.start()

    def submit(self, job_path: Path, outcome_path: Path, log_path: Path) -> ForkedWorker:
        worker = ForkedWorker(self)
        with self._lock:
            job_id = str(next(self._ids))
            self._workers[job_id] = worker
            if self.ended is not None:
                worker._lose(self.ended)
                return worker
            try:
                self.process.stdin.write(f"{job_id}\t{job_path}\t{outcome_path}\t{log_path}\n")
                self.process.stdin.flush()
            except OSError:  # it has just ended: the reader marks this worker lost with the others
                pass
        return worker

    def _read(self) -> None:
        for line in self.process.stdout:
            kind, job_id, *rest = line.split() + ["", ""]
            worker = self._workers.get(job_id)
            if kind == "ready":
                self.ready = True
            elif kind == "started" and worker is not None:
                worker._started(int(rest[0]))
            elif kind == "exited" and worker is not None:
                worker._exited(int(rest[0]))
        try:
            code = self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:  # it closed its stdout but runs on: it can no longer report anything
            self.process.kill()
            code = self.process.wait()
        with self._lock:
            self.ended = self._death(code)
            for worker in self._workers.values():
                worker._lose(self.ended)

    def _death(self, code: int) -> str:
        how = worker_death(code) if code < 0 else f"exited with code {code}"
        tail = _tail(self.log_path)
        return f"the job server process ended (it {how}{f'; its last output: {tail}' if tail else ''})"

    def close(self) -> None:
        """No more jobs: it stops what still runs (nothing, after a finished run), reports it and exits; one still
        importing (the run stopped before its jobs) is ended at once, not after its import."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        if not self.ready:
            self.process.terminate()  # still importing: nothing runs in it
        try:
            self.process.wait(timeout=2 * STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._reader.join(timeout=2 * STOP_GRACE_SECONDS)
        if self.verbose:
            with contextlib.suppress(OSError):
                sys.stderr.write(self.log_path.read_text(errors="replace"))


def start_server(settings) -> JobServer:
    """A job server for a run's jobs, started before they are known: it imports TensorFlow while the parent loads and
    prepares the model. Give it to run(), and close it after."""
    return JobServer(settings)


def run(jobs: list[Job], settings, on_event, server: JobServer | None = None) -> list[JobOutcome]:
    folder = _workspace.scratch_dir("jobs-")
    pending = collections.deque(enumerate(jobs))
    running: dict[int, _Running] = {}
    outcomes: dict[int, JobOutcome] = {}
    started_here: list[JobServer] = []
    try:
        while pending or running:
            while pending and len(running) < settings.jobs and _fits(pending[0][1], running, settings.max_memory):
                index, job = pending.popleft()
                if server is None or server.ended is not None:  # none given, or it ended: the jobs left go to a new one
                    server = start_server(settings)
                    started_here.append(server)
                running[index] = _hand_over(job, index, server, folder)
                on_event("started", job, None)
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
        for entry in running.values():
            entry.process.send_signal(signal.SIGTERM)
        for importing in {id(e.process.server): e.process.server for e in running.values() if not e.process.server.ready}.values():
            importing.process.terminate()  # no worker of it runs yet: it ends at once, its jobs with it, not after its import
        for entry in running.values():
            _reap(entry.process)
        for entry in running.values():
            _remove_stale(entry.job)
        raise
    finally:
        for own in started_here:
            own.close()
    return [outcomes[index] for index in range(len(jobs))]


def _fits(job: Job, running: dict[int, _Running], budget: int) -> bool:
    return not running or sum(r.job.expected_peak for r in running.values()) + job.expected_peak <= budget


def _hand_over(job: Job, index: int, server: JobServer, folder: Path) -> _Running:
    job_path = package.write(job, Path(folder) / f"job-{index}.pickle")
    outcome_path = Path(folder) / f"outcome-{index}.pickle"
    log_path = Path(folder) / f"job-{index}.log"
    return _Running(job, server.submit(job_path, outcome_path, log_path), outcome_path, log_path, time.monotonic())


def _collect(entry: _Running, settings) -> JobOutcome:
    seconds = time.monotonic() - entry.started
    # A worker whose server ended after it wrote its outcome (written last, atomically) still finished its job.
    if (entry.process.returncode == 0 or entry.process.lost) and entry.outcome_path.exists():
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
    from edgezoo.target_run import TargetFailure, TargetResult

    quantization = (job.options.quantize or job.profile.quantization).value
    error = ConversionError(f"{job.name}: {reason}; nothing was published for it, and the other jobs went on.")
    result = TargetResult(job.folder, None, None, None, None, TargetFailure(error, quantization), job.profile)
    return JobOutcome(job.name, result, (f"{job.folder}: failed (exit 4): {error}",), seconds, None, worker, notes)


def _why(entry: _Running, settings) -> str:
    if entry.timed_out:
        return f"the job ran longer than its timeout of {settings.timeout:g} s and its worker process was stopped"
    if entry.process.lost:
        return f"{entry.process.lost} while the job ran, and its worker process was stopped with it"
    tail = _tail(entry.log_path)
    said = f" (its last output: {tail})" if tail else ""
    return f"its worker process {worker_death(entry.process.returncode)}{said}"


def _tail(log_path: Path) -> str:
    try:
        return " ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])[-400:]
    except OSError:
        return ""


def worker_death(code: int) -> str:
    """How a worker that left no outcome ended, in words, from its exit status."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        why = {"SIGABRT": "a converter or runtime called abort()", "SIGSEGV": "a crash in native code",
               "SIGKILL": "the kernel's out-of-memory killer, or a kill from outside",
               "SIGBUS": "a crash in native code"}.get(name, "a signal")
        return f"was ended by {name} ({why})"
    return f"exited with code {code} without a result"


def _stop(process: ForkedWorker) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    _reap(process)


def _reap(process: ForkedWorker) -> None:
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

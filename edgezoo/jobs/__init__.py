"""Jobs: one model x one target, run in a worker process of its own, so that a crash, an abort (TFLM, a converter's
segfault), running out of memory or a timeout ends that job with a reported failure, never the run.

A run prepares what its jobs share once, in the parent (the loaded model, the calibration and held-out data, the
original's outputs on them), writes it to a file every job of the model reads (package.py), and hands the jobs to an
executor: one module per executor, one registry entry (EXECUTOR_MODULES), each with `run(jobs, settings, on_event)`
returning one JobOutcome per job, in order. `local` forks worker processes on this machine (local.py); `ray` runs one
Ray actor per job on a cluster (ray_executor.py).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Callable

from edgezoo.errors import UsageError
from edgezoo.jobs.package import Job, JobOutcome

__all__ = ["EXECUTOR_MODULES", "ExecutorSettings", "Job", "JobOutcome", "check_executor", "executor_for", "run_jobs"]

# A new executor: one module with run(jobs, settings, on_event) -> list[JobOutcome], plus one line here.
EXECUTOR_MODULES = {
    "local": "edgezoo.jobs.local",
    "ray": "edgezoo.jobs.ray_executor",
}

# on_event(kind, job, outcome): kind is "started" or "finished" (outcome is None until then).
OnEvent = Callable[[str, Job, "JobOutcome | None"], None]


@dataclass(frozen=True)
class ExecutorSettings:
    """How jobs run: how many at once, the memory they may take together, how long each may take, and where."""

    jobs: int  # jobs at once
    max_memory: int  # bytes: a job is admitted only while the expected peaks of the running ones and its own fit
    timeout: float | None = None  # seconds per job; None: no limit
    verbose: bool = False  # the workers show TensorFlow's logs and tracebacks
    ray_address: str | None = None  # ray: the cluster to join (None: start a local one)

    @property
    def threads_per_job(self) -> int:
        """TensorFlow's and the converters' thread pools per worker: the cores shared among the jobs that run at once."""
        return max(1, (os.cpu_count() or 1) // max(1, self.jobs))


def check_executor(name: str) -> None:
    """An executor's name is known, checked where options are made (before any slow work) and where one is used."""
    if name not in EXECUTOR_MODULES:
        raise UsageError(f"unknown executor '{name}'; known: {', '.join(EXECUTOR_MODULES)}.")


def executor_for(name: str):
    check_executor(name)
    return importlib.import_module(EXECUTOR_MODULES[name])


def run_jobs(executor: str, jobs: list[Job], settings: ExecutorSettings, on_event: OnEvent | None = None,
             server=None) -> list[JobOutcome]:
    """server: the local job server started ahead (local.start_server), or None; other executors start their own."""
    on_event = on_event or (lambda kind, job, outcome: None)
    if executor == "local":
        return executor_for(executor).run(jobs, settings, on_event, server)
    return executor_for(executor).run(jobs, settings, on_event)

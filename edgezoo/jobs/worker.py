"""A job's worker process: one job, then it exits (edgezoo/jobs/forkserver.py forks one per job; Ray's actors call
run_job in their own process).

It reads the job from JOB_FILE, runs it and writes a JobOutcome to OUTCOME_FILE. SIGTERM and SIGINT unwind the job
(its staging folder is removed) and stop the processes below it; if its parent (the job server) dies, the kernel sends
it SIGTERM (PR_SET_PDEATHSIG).

Two seams for code outside the product (bench/, tests/), both "PATH.py:function", loaded from that file:
    Job.work               the work the worker runs instead of the target's: function(job, prepared) -> JobOutcome
                           (bench/convert_only.py: conversion alone, for the benchmark against the official converters)
    $EDGEZOO_JOB_HOOK      called with the job before it runs, in the worker (tests/job_faults.py: a job that aborts or hangs)
Unset, as in every normal run, neither changes anything.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import signal
import time
from pathlib import Path

HOOK_VARIABLE = "EDGEZOO_JOB_HOOK"

KEY_FILE = ".edgezoo-job-key"  # in a published target folder of a build: the content key it was made with


class Stopped(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame):
    for other in (signal.SIGINT, signal.SIGTERM):
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent ends, so a killed run leaves no worker behind."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def thread_environment(threads: int) -> dict[str, str]:
    """TensorFlow's thread pools and OpenMP's, for a worker's environment: read when TensorFlow starts (Ray sets
    OMP_NUM_THREADS only). The TFLM child, Node and Chromium inherit them and are single-threaded anyway."""
    return {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": str(min(2, threads)), "OMP_NUM_THREADS": str(threads)}


def peak_rss_bytes() -> int:
    """This process' peak resident memory, or a finished child's (TFLM, Node) if larger: ru_maxrss is in KiB on Linux."""
    return 1024 * max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def run_job(job, prepared=None):
    """Run one job in this process and return its JobOutcome. The target folder is published into job.out_dir."""
    from edgezoo import target_run
    from edgezoo.jobs import package
    from edgezoo.output import OutputTree

    if job.work is not None:
        return load_function(job.work)(job, prepared)
    started = time.monotonic()
    prepared = prepared or package.read(job.prepared)
    warnings: list[str] = []
    feedback = target_run.Feedback(warn=warnings.append)
    tree = OutputTree(job.out_dir, job.model_name, job.force)
    tree.model_dir.mkdir(parents=True, exist_ok=True)
    result = target_run.try_target(prepared.model, job.profile, job.options, prepared.data, prepared.reference, tree, feedback,
                                  prepared.pruning, folder=job.folder)
    if job.key is not None and result.failure is None:
        write_key(result.output_dir, job.key)
    return package.JobOutcome(job.name, package.portable(result), tuple(warnings), time.monotonic() - started, peak_rss_bytes(),
                              f"pid {os.getpid()}")


def write_key(folder: Path, key: str) -> None:
    """After publishing: a folder killed before this line has no key and is redone by the next build."""
    temporary = folder / f"{KEY_FILE}.tmp"
    temporary.write_text(key + "\n")
    os.replace(temporary, folder / KEY_FILE)


def read_key(folder: Path) -> str | None:
    try:
        return (folder / KEY_FILE).read_text().strip()
    except OSError:
        return None


def load_function(spec: str):
    """The function named by "PATH.py:function" (the seams in this module's docstring), loaded from that file once."""
    import sys

    path, _, name = spec.rpartition(":")
    module_name = f"edgezoo_seam_{Path(path).stem}"
    if module_name not in sys.modules:
        loaded = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loaded)
        sys.modules[module_name] = module  # before it runs: its dataclasses look their module up
        loaded.loader.exec_module(module)
    return getattr(sys.modules[module_name], name)


def run_hook(job) -> None:
    """$EDGEZOO_JOB_HOOK's function on the job, in the worker before the job runs (nothing when unset)."""
    if os.environ.get(HOOK_VARIABLE):
        load_function(os.environ[HOOK_VARIABLE])(job)


def serve(job_path: str, outcome_path: str) -> int:
    """The worker process' work, its exit code the return value: 0 with the outcome written, 128 + N after signal N."""
    from edgezoo import _processes
    from edgezoo.jobs import package

    try:
        job = package.read(Path(job_path))
        run_hook(job)
        package.write(run_job(job), Path(outcome_path))
        return 0
    except Stopped as stop:
        _processes.stop_descendants()
        return 128 + stop.signum

"""`convert` with several targets: each target a job in a worker process, sharing the model, data and reference
that the parent prepared once."""

from __future__ import annotations

import dataclasses
import os

from edgezoo import _tf, _workspace
from edgezoo.jobs import ExecutorSettings, Job, memory, package, run_jobs

MEMORY_SHARE = 0.9  # of the memory free at the start, when no --max-memory is given


def in_workers(options, target_count: int) -> bool:
    """Several targets run as jobs in worker processes. A single target runs in this process (the run is then that
    one job, and a worker would only add its start-up), unless --jobs or another executor asks for workers."""
    return target_count > 1 or options.jobs is not None or options.executor != "local"


def settings_for(options, job_count: int) -> ExecutorSettings:
    jobs = options.jobs or os.cpu_count() or 1
    budget = options.max_memory or int(MEMORY_SHARE * (memory.available_bytes() or 8 << 30))
    return ExecutorSettings(jobs=max(1, min(jobs, job_count)), max_memory=budget, timeout=options.job_timeout,
                            verbose=_tf.is_verbose(), ray_address=options.ray_address)


def start_server(options, target_count: int):
    """The local job server for a run's jobs, started now so that it imports TensorFlow while this process loads the
    model and runs the original; None where the run's targets do not run in local workers."""
    if not in_workers(options, target_count) or options.executor != "local":
        return None
    from edgezoo.jobs import local

    return local.start_server(settings_for(options, target_count))


def release(server) -> None:
    if server is not None:
        server.close()


def run_targets(model, profiles, options, data, reference, tree, feedback, pruning, server=None) -> tuple:
    prepared_path = package.write(package.prepared_for(model, data, reference, pruning), _workspace.scratch_dir("prepared-") / "prepared.pickle")
    converted = pruning.model if pruning is not None else model
    dirs = tuple(dict.fromkeys(m.saved_model_dir for m in (model, converted, getattr(pruning, "original", None)) if m is not None))
    expected = memory.expected_peak(converted.saved_model_dir)
    options = dataclasses.replace(options, calibration=None)  # the data is prepared already (and an iterable does not pickle)
    jobs = [Job(name=f"{tree.model_dir.name}/{profile.name}", folder=profile.name, profile=profile, options=options,
                prepared=prepared_path, out_dir=options.out_dir, model_name=model.name, force=options.force, expected_peak=expected,
                saved_model_dirs=dirs)
            for profile in profiles]
    settings = settings_for(options, len(jobs))
    where = f"{settings.jobs} worker processes" if options.executor == "local" else f"{options.executor} workers"
    with feedback.step(f"converting for {len(jobs)} targets, up to {settings.jobs} at once in {where}"):
        outcomes = run_jobs(options.executor, jobs, settings, server=server)
    for outcome in outcomes:
        for text in (*outcome.notes, *outcome.warnings):
            feedback.warn(text)
    return tuple(outcome.result for outcome in outcomes)

"""The Ray executor: each job in a Ray actor of its own, killed after its job (Ray's max_calls=1 does not guarantee a
fresh process when a task starts; a new actor is one). For clusters: `--executor ray --ray-address ADDR`; without an
address a local Ray instance is started for the run (and stopped after it).

What a job needs travels through Ray's object store, put once per model and shared by that model's jobs: the prepared
model, data and reference (jobs/package.py) and the SavedModel folders as tar archives, so a node needs no shared file
system. The actor runs the job in a scratch folder of its node and returns its outcome and the published target
folder as a tar, which the driver publishes into its own output folder (staged, then renamed). Each actor declares
num_cpus=1 and `memory=` the job's expected peak (Ray uses it for admission only, it limits nothing) and gets
TensorFlow's thread counts in its environment (Ray sets OMP_NUM_THREADS only). A job past its timeout has its actor
killed; an actor that dies (an abort, a crash, the out-of-memory killer, a kill from outside) is that job's failure.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import logging
import os
import tarfile
import time
from pathlib import Path

from edgezoo.errors import UsageError
from edgezoo.jobs.local import failed_outcome
from edgezoo.jobs.package import Job, JobOutcome
from edgezoo.jobs.worker import thread_environment

POLL_SECONDS = 0.2
THREADS_PER_ACTOR = 1  # matches num_cpus=1: Ray packs one job per CPU it counts


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise UsageError("the ray executor needs Ray: pip install 'edgezoo[ray]' (ray==2.52.1; `make install` installs it).") from exc
    return ray


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(folder, arcname=".")
    return buffer.getvalue()


def _untar(data: bytes, into: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        archive.extractall(into, filter="data")  # written by our own worker; the data filter keeps members inside `into`


class JobActor:
    """One job, in the actor's own process; the driver kills the actor after it."""

    def run(self, job: Job, shared: tuple[bytes, dict[str, bytes]]):
        import pickle
        import tempfile

        from edgezoo import _tf
        from edgezoo.jobs import worker

        _tf.set_verbose(os.environ.get("EDGEZOO_VERBOSE") == "1")
        _tf.configure_environment()  # before anything imports TensorFlow: quiet logs, tf-keras
        work = Path(tempfile.mkdtemp(prefix="edgezoo-ray-job-"))
        prepared_bytes, saved_models = shared
        moved = {}
        for number, (original, data) in enumerate(saved_models.items()):
            target = work / f"saved_model_{number}"
            target.mkdir()
            _untar(data, target)
            moved[original] = target
        prepared = pickle.loads(prepared_bytes)  # noqa: S301 -- the driver's own
        prepared = dataclasses.replace(prepared, model=_moved(prepared.model, moved),
                                       pruning=_moved_pruning(prepared.pruning, moved))
        job = dataclasses.replace(job, out_dir=work / "out", force=True)
        worker.run_hook(job)
        outcome = worker.run_job(job, prepared)
        node = f"ray node {_node_id()} pid {os.getpid()}"
        result = outcome.result
        archive = _tar(result.output_dir) if result.output_dir is not None else None
        return dataclasses.replace(outcome, worker=node), archive, str(result.output_dir) if result.output_dir else None


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()[:12]


def _moved(model, moved: dict):
    where = moved.get(str(model.saved_model_dir))
    return dataclasses.replace(model, saved_model_dir=where) if where is not None else model


def _moved_pruning(pruning, moved: dict):
    if pruning is None:
        return None
    return dataclasses.replace(pruning, model=_moved(pruning.model, moved), original=_moved(pruning.original, moved))


def run(jobs: list[Job], settings, on_event) -> list[JobOutcome]:
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        with contextlib.redirect_stdout(io.StringIO()):  # --json keeps stdout for its own lines
            ray.init(address=settings.ray_address, num_cpus=None if settings.ray_address else settings.jobs, include_dashboard=False,
                     log_to_driver=settings.verbose, logging_level=logging.INFO if settings.verbose else logging.ERROR)
    actor_class = ray.remote(JobActor)
    env = {name: value for name, value in os.environ.items() if name.startswith("EDGEZOO_")}
    env.update(thread_environment(THREADS_PER_ACTOR), EDGEZOO_VERBOSE="1" if settings.verbose else "0")
    shared: dict[Path, object] = {}
    pending = collections.deque(enumerate(jobs))
    running: dict = {}  # object ref -> (index, job, actor, started)
    outcomes: dict[int, JobOutcome] = {}
    try:
        while pending or running:
            while pending and len(running) < settings.jobs and _fits(pending[0][1], running, settings.max_memory):
                index, job = pending.popleft()
                if job.prepared not in shared:
                    shared[job.prepared] = ray.put((Path(job.prepared).read_bytes(),
                                                    {str(folder): _tar(Path(folder)) for folder in job.saved_model_dirs}))
                actor = actor_class.options(num_cpus=1, memory=job.expected_peak, max_restarts=0,
                                            runtime_env={"env_vars": env}).remote()
                running[actor.run.remote(job, shared[job.prepared])] = (index, job, actor, time.monotonic())
                on_event("started", job, None)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                index, job, actor, started = running.pop(ref)
                outcomes[index] = _collect(ray, ref, job, started)
                ray.kill(actor)
                on_event("finished", job, outcomes[index])
            for ref, (index, job, actor, started) in list(running.items()):
                if settings.timeout is not None and time.monotonic() - started > settings.timeout:
                    del running[ref]
                    ray.kill(actor)
                    outcomes[index] = failed_outcome(job, f"the job ran longer than its timeout of {settings.timeout:g} s and its "
                                                          "Ray actor was killed", time.monotonic() - started, None)
                    on_event("finished", job, outcomes[index])
    finally:
        for _, _, actor, _ in running.values():
            with contextlib.suppress(Exception):
                ray.kill(actor)
        if started_here:
            ray.shutdown()
    return [outcomes[index] for index in range(len(jobs))]


def _fits(job: Job, running: dict, budget: int) -> bool:
    return not running or sum(entry[1].expected_peak for entry in running.values()) + job.expected_peak <= budget


def _collect(ray, ref, job: Job, started: float) -> JobOutcome:
    """The actor's outcome, with its target folder published into the driver's output folder; or the job's failure."""
    try:
        outcome, archive, remote_dir = ray.get(ref)
    except ray.exceptions.RayActorError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return failed_outcome(job, f"its Ray actor died (an abort or crash in a converter or runtime, the out-of-memory killer, or "
                                   f"a kill from outside): {first[:300]}", time.monotonic() - started, None)
    except ray.exceptions.RayError as exc:
        return failed_outcome(job, f"Ray could not run it: {type(exc).__name__}: {str(exc)[:300]}", time.monotonic() - started, None)
    if archive is None:
        return outcome
    return dataclasses.replace(outcome, result=_publish(outcome.result, archive, Path(remote_dir), job))


def _publish(result, archive: bytes, remote_dir: Path, job: Job):
    from edgezoo.output import OutputTree

    tree = OutputTree(job.out_dir, job.model_name, job.force)
    tree.model_dir.mkdir(parents=True, exist_ok=True)
    with tree.staging(job.folder) as staging:
        _untar(archive, staging)
        final = tree.publish(staging, job.folder)
    return dataclasses.replace(result, output_dir=final, artifact=result.artifact.relocated(remote_dir, final))

"""Conversion only, through the job runner: the work the official converters do and nothing more, for the benchmark
that compares the runner with them (bench/jobs.py, part a). Outside the product: the jobs run it through the worker's
seam (Job.work = "bench/convert_only.py:run_job", edgezoo/jobs/worker.py).

What runs is the runner as `convert --target ...` runs it -- the job server started before the parent loads the
model, the parent loading it and preparing the calibration data once, one Prepared file every job reads, the local
executor with its admission, one worker process forked per job -- but each job only prepares the target's model
(fixed shapes, the op check before conversion) and converts it: no parity check, no reference run, no report, no
device bundle, no C sources, no arena measurement. Its folders hold the converted files alone, so nothing may present
them as checked; that is why this is not an option of `edgezoo.convert` (whose every published folder carries its
report and verdict).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

from edgezoo import _workspace
from edgezoo.jobs import ExecutorSettings, Job, JobOutcome, memory, package, run_jobs
from edgezoo.jobs.worker import load_function

WORK = f"{Path(__file__).resolve()}:run_job"  # Job.work of these jobs: this file's run_job, in the worker


@dataclass(frozen=True)
class Converted:
    """What a conversion-only job made: where its files are, and what was not done to them."""

    target: str
    output_dir: Path | None
    files: tuple[str, ...]
    size_bytes: int
    failure: str | None = None
    checked: bool = False  # never: no parity check ran on it


def run(source: str, calibration, targets: tuple[str, ...], out_dir: Path, jobs: int = 2) -> list[JobOutcome]:
    """Convert `source` for `targets` in up to `jobs` worker processes at once; one JobOutcome (result: Converted) per target."""
    from edgezoo.jobs import local
    from edgezoo.options import ConvertOptions
    from edgezoo.output import OutputTree

    options = ConvertOptions(targets=targets, out_dir=out_dir, calibration=calibration, force=True, jobs=jobs)
    settings = ExecutorSettings(jobs=max(1, min(jobs, len(targets))), max_memory=memory.available_bytes() or 8 << 30)
    server = local.start_server(settings)  # it imports TensorFlow while this process loads the model
    try:
        from edgezoo import pipeline
        from edgezoo.zoo import load

        profiles = pipeline.resolve_targets(options.targets)
        model = load(source, options.load_options())
        data = pipeline.prepare_data(model, options)
        prepared = package.write(package.prepared_for(model, data, None), _workspace.scratch_dir("prepared-") / "prepared.pickle")
        tree = OutputTree(options.out_dir, model.name, True)
        tree.check([p.name for p in profiles])
        job_options = dataclasses.replace(options, calibration=None)  # the data is in the Prepared file
        expected = memory.expected_peak(model.saved_model_dir)
        job_list = [Job(name=f"{tree.model_dir.name}/{p.name}", folder=p.name, profile=p, options=job_options, prepared=prepared,
                        out_dir=options.out_dir, model_name=model.name, force=True, expected_peak=expected,
                        saved_model_dirs=(model.saved_model_dir,), work=WORK) for p in profiles]
        load_function(WORK)  # the workers' name for this module, so that their outcomes' Converted unpickle here too
        return run_jobs("local", job_list, settings, server=server)
    finally:
        server.close()


def run_job(job: Job, prepared=None) -> JobOutcome:
    """In the worker: the target's model prepared and converted into its folder, published as the pipeline publishes.
    The prepared data is let go before the conversion where the conversion does not calibrate on it (a smaller peak)."""
    from edgezoo.formats import converter_for
    from edgezoo.errors import EdgezooError
    from edgezoo.jobs.worker import peak_rss_bytes
    from edgezoo.output import OutputTree
    from edgezoo.target_run import conversion_request
    from edgezoo.targets.constraints import prepare_model

    started = time.monotonic()
    prepared = prepared or package.read(job.prepared)
    profile, data, model = job.profile, prepared.data, prepared.model
    del prepared
    quantization = job.options.quantize or profile.quantization
    request = conversion_request(profile, quantization, data)
    tree = OutputTree(job.out_dir, job.model_name, job.force)
    tree.model_dir.mkdir(parents=True, exist_ok=True)
    try:
        target_model = prepare_model(model, profile, request=request, input_shapes=job.options.input_shapes, data=data)
        del data  # the request holds it where the conversion calibrates
        with tree.staging(job.folder) as staging:
            artifact = converter_for(profile.format).convert(target_model, request, staging)
            files = tuple(str(f.relative_to(staging)) for f in artifact.files)
            size = artifact.size_bytes
            final = tree.publish(staging, job.folder)
        result = Converted(job.folder, final, files, size)
    except EdgezooError as exc:
        result = Converted(job.folder, None, (), 0, failure=f"{type(exc).__name__}: {exc}")
    return JobOutcome(job.name, result, (), time.monotonic() - started, peak_rss_bytes(), f"pid {os.getpid()}")

"""Faults injected into jobs, through the workers' seam: EDGEZOO_JOB_HOOK="tests/job_faults.py:inject" (edgezoo/jobs/worker.py;
tests/conftest.py sets it for the whole session, and it does nothing until a test asks).

EDGEZOO_TEST_JOB_FAULT="FOLDER:abort,MODEL/FOLDER:hang" makes the job of that target folder (of every model, or of one
model) abort, as a converter that calls abort() would, or hang, writing its pid to $EDGEZOO_TEST_JOB_PIDS/FOLDER.pid
first (for a test that kills it mid-run).
"""

import os
import time
from pathlib import Path

HOOK = f"{Path(__file__).resolve()}:inject"


def inject(job) -> None:
    for fault in filter(None, os.environ.get("EDGEZOO_TEST_JOB_FAULT", "").split(",")):
        folder, _, kind = fault.partition(":")
        if folder not in (job.folder, job.name):  # a target folder of any model, or one cell: MODEL/FOLDER
            continue
        if kind == "abort":
            os.abort()
        if kind == "hang":
            if os.environ.get("EDGEZOO_TEST_JOB_PIDS"):
                (Path(os.environ["EDGEZOO_TEST_JOB_PIDS"]) / f"{folder}.pid").write_text(str(os.getpid()))
            time.sleep(3600)

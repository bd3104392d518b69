"""`edgezoo build` and the job runner, on the real converters and runtimes: every cell a job in a worker process of its
own (local processes, and a real local Ray cluster), a job that aborts or is killed mid-run reported while the others
finish, resumable by content key, interrupted without partial cells. digits-cnn, bundled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest

import edgezoo
from edgezoo.matrix import keys, parse_matrix
from edgezoo.errors import ConversionError, UsageError
from edgezoo.reports.json_report import BUILD_REPORT_KIND, schema_for
from tests.conftest import REPO

MATRIX = 'targets = ["phone", "microcontroller"]\n[[models]]\nsource = "digits-cnn"\n'


def _artifact_digests(out: Path, cell: str) -> dict:
    return json.loads((out / cell / "report.json").read_text())["reproducibility"]["files"]


def _staging(out: Path) -> list[Path]:
    return sorted(out.rglob(".*.partial-*"))


@pytest.fixture(scope="module")
def matrix_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("matrix")
    (folder / "matrix.toml").write_text('out = "out"\n' + MATRIX)  # top-level keys before the first [[models]]
    return folder / "matrix.toml"


@pytest.fixture(scope="module")
def local_build(matrix_file):
    """Two cells on two local workers; the microcontroller's job aborts (the test hook calls os.abort() in its worker)."""
    events = []
    os.environ["EDGEZOO_TEST_JOB_FAULT"] = "microcontroller:abort"
    try:
        result = edgezoo.build(matrix_file, jobs=2, on_event=events.append)
    finally:
        del os.environ["EDGEZOO_TEST_JOB_FAULT"]
    return result, events


def test_an_aborting_job_is_a_reported_failure_and_the_others_finish(local_build, matrix_file):
    result, events = local_build
    out = matrix_file.parent / "out"
    state = {c.folder: (c.state, c.status, c.exit_code) for c in result.cells}
    assert state == {"phone": ("built", "passed", 0), "microcontroller": ("failed", "failed", 4)}
    failed = next(c for c in result.cells if c.folder == "microcontroller")
    assert "SIGABRT" in failed.error and "abort()" in failed.error
    assert result.exit_code == 4 and (out / "digits-cnn" / "phone" / "model.tflite").is_file()
    assert not (out / "digits-cnn" / "microcontroller").exists() and _staging(out) == []  # the dead worker's staging removed
    phone = next(c for c in result.cells if c.folder == "phone")
    assert phone.worker.startswith("pid ") and phone.worker != f"pid {os.getpid()}"  # a worker process, not this one
    assert [e["event"] for e in events][:1] == ["build_started"] and events[-1]["event"] == "build_finished"
    assert sorted(e["cell"] for e in events if e["event"] == "job_finished") == ["digits-cnn/microcontroller", "digits-cnn/phone"]


def test_the_build_report_lists_every_cell_against_its_schema(local_build, matrix_file):
    out = matrix_file.parent / "out"
    report = json.loads((out / "build-report.json").read_text())
    jsonschema.validate(report, schema_for(BUILD_REPORT_KIND))
    rows = {row["folder"]: row for row in report["cells"]}
    assert report["counts"] == {"built": 1, "skipped": 0, "failed": 1, "not_run": 0, "total": 2} and report["exit_code"] == 4
    phone = rows["digits-cnn/phone"]
    assert phone["passed"] and phone["size_bytes"] == (out / "digits-cnn" / "phone" / "model.tflite").stat().st_size
    assert phone["min_snr_db"] > 40 and phone["top1_agreement"] == 1.0 and phone["peak_rss_bytes"] > 100 << 20
    assert "SIGABRT" in rows["digits-cnn/microcontroller"]["error"]
    html = (out / "build-report.html").read_text()
    assert "SIGABRT" in html and "data-col=" in html and "addEventListener('click'" in html  # failures with reason, sortable
    summary = json.loads((out / "digits-cnn" / "report.json").read_text())  # the model's run summary, as convert writes it
    assert {r["target"]: r["status"] for r in summary["targets"]} == {"phone": "passed", "microcontroller": "failed"}


def test_a_cell_whose_files_changed_is_no_longer_intact(local_build, matrix_file):
    result, _ = local_build
    phone = next(c for c in result.cells if c.folder == "phone")
    folder = matrix_file.parent / "out" / "digits-cnn" / "phone"
    assert keys.intact(folder, phone.key) is not None
    assert keys.intact(folder, "0" * 64) is None  # another key: other inputs, options or tools
    original = (folder / "model.tflite").read_bytes()
    try:
        (folder / "model.tflite").write_bytes(original + b"\0")
        assert keys.intact(folder, phone.key) is None
    finally:
        (folder / "model.tflite").write_bytes(original)


def test_a_rerun_skips_intact_cells_redoes_the_failed_one_and_an_interrupt_leaves_no_partial_cell(local_build, matrix_file):
    """The CLI with --json: phone is skipped, the failed microcontroller cell is redone; it hangs (test hook)
    and SIGTERM arrives while it runs: exit 143, the finished cells intact, nothing of the hanging one published."""
    result, _ = local_build
    out = matrix_file.parent / "out"
    before = _artifact_digests(out, "digits-cnn/phone")
    env = {**os.environ, "EDGEZOO_TEST_JOB_FAULT": "microcontroller:hang", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgezoo", "build", str(matrix_file), "--json", "--jobs", "2"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    events = []
    try:
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "job_started":
                time.sleep(1.0)
                proc.send_signal(signal.SIGTERM)
        stderr = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, stderr[-2000:]
    assert [e["cell"] for e in events if e["event"] == "cell_skipped"] == ["digits-cnn/phone"]
    assert [e["cell"] for e in events if e["event"] == "job_started"] == ["digits-cnn/microcontroller"]
    assert _artifact_digests(out, "digits-cnn/phone") == before
    assert keys.intact(out / "digits-cnn" / "phone", next(c.key for c in result.cells if c.folder == "phone"))
    assert not (out / "digits-cnn" / "microcontroller").exists() and _staging(out) == []
    report = json.loads((out / "build-report.json").read_text())
    assert {r["folder"]: r["state"] for r in report["cells"]} == {"digits-cnn/phone": "skipped", "digits-cnn/microcontroller": "not run"}


def test_a_job_past_its_timeout_is_stopped_and_reported(tmp_path, digits, monkeypatch):
    monkeypatch.setenv("EDGEZOO_TEST_JOB_FAULT", "phone:hang")
    started = time.monotonic()
    with pytest.raises(ConversionError, match=r"longer than its timeout of 3 s"):
        edgezoo.convert(digits, target="phone", out_dir=tmp_path, jobs=1, job_timeout=3)
    assert time.monotonic() - started < 60 and _staging(tmp_path) == [] and not (tmp_path / "digits-cnn" / "phone").exists()


def test_the_matrix_is_read_strictly_with_every_problem_named_where_it_is(tmp_path):
    data = {"targets": ["phone"], "optins": {}, "variants": {"i8": {"quantize": "int8", "prune": "half"}},
            "models": [{"source": "digits-cnn", "calibraton": "x.npz", "variants": ["i16"]}, {"name": "no-source"}]}
    with pytest.raises(UsageError) as caught:
        parse_matrix(data, tmp_path / "m.toml")
    text = str(caught.value)
    assert "unknown key 'optins' (did you mean 'options'?)" in text
    assert "variants.i8.prune: must be a number, got 'half'" in text
    assert "models[1] (digits-cnn): unknown key 'calibraton' (did you mean 'calibration'?)" in text
    assert "models[1] (digits-cnn).variants: unknown variant 'i16'; declared: i8" in text
    assert "models[2]: missing 'source'" in text
    matrix = parse_matrix({"targets": ["phone", "onnx"], "variants": {"default": {}, "f16": {"quantize": "float16"}},
                           "models": [{"source": "digits-cnn", "calibration": "data/d.npz"}]}, tmp_path / "m.toml")
    assert matrix.models[0].calibration == tmp_path / "data" / "d.npz" and list(matrix.variants) == ["default", "f16"]


# --- Ray ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray cluster for the session (not local mode): 2 CPUs, as the local executor's 2 workers."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_local_outputs_and_reports_an_abort_and_a_kill(ray_cluster, local_build, matrix_file, tmp_path):
    """The same matrix on Ray plus a browser cell: phone byte-identical to the local executor's; the
    microcontroller's actor aborts; the browser's hangs and is killed mid-run from outside (SIGKILL on its process)."""
    pids = tmp_path / "pids"
    pids.mkdir()
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(MATRIX.replace('"microcontroller"]', '"microcontroller", "browser"]'))
    killed = []

    def kill_when_hanging():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            if (pids / "browser.pid").exists():
                pid = int((pids / "browser.pid").read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.2)

    killer = threading.Thread(target=kill_when_hanging, daemon=True)
    killer.start()
    os.environ.update(EDGEZOO_TEST_JOB_FAULT="microcontroller:abort,browser:hang", EDGEZOO_TEST_JOB_PIDS=str(pids))
    try:
        result = edgezoo.build(matrix, out_dir=tmp_path / "out", jobs=2, executor="ray")
    finally:
        for name in ("EDGEZOO_TEST_JOB_FAULT", "EDGEZOO_TEST_JOB_PIDS"):
            del os.environ[name]
    killer.join(5)
    state = {c.folder: (c.state, c.exit_code) for c in result.cells}
    assert state == {"phone": ("built", 0), "microcontroller": ("failed", 4), "browser": ("failed", 4)}
    assert killed, "the browser job never started hanging"
    assert _artifact_digests(tmp_path / "out", "digits-cnn/phone") == _artifact_digests(matrix_file.parent / "out", "digits-cnn/phone")
    errors = {c.folder: c.error for c in result.cells}
    assert "Ray actor died" in errors["microcontroller"] and "Ray actor died" in errors["browser"]
    assert all(c.worker.startswith("ray node ") for c in result.cells if c.state == "built")
    assert {c.worker for c in result.cells if c.state == "built"}.isdisjoint({f"pid {os.getpid()}"})
    assert _staging(tmp_path / "out") == [] and not (tmp_path / "out" / "digits-cnn" / "browser").exists()
    assert keys.intact(tmp_path / "out" / "digits-cnn" / "phone", next(c.key for c in result.cells if c.folder == "phone"))


def test_job_options_are_checked_before_any_work():
    from edgezoo.jobs.memory import parse_size

    assert parse_size("8G") == 8 << 30 and parse_size("512M") == 512 << 20 and parse_size("1.5GiB") == 3 << 29
    for bad, message in (({"jobs": 0}, "--jobs takes a number of jobs of at least 1"), ({"max_memory": "lots"}, "--max-memory takes a size"),
                         ({"job_timeout": -1}, "--job-timeout takes a number of seconds"), ({"executor": "slurm"}, "unknown executor 'slurm'; known: local, ray")):
        with pytest.raises(UsageError, match=message):
            edgezoo.ConvertOptions(**bad)


def test_jobs_are_admitted_only_while_their_expected_peaks_fit_the_memory_budget(tmp_path, local_build):
    """--max-memory below two jobs' expected peaks: with 2 workers, the second job starts only once the first finished
    (one job always runs, however large). With the default budget (90% of the free memory) the local_build's two jobs
    started together, when the machine had room for both."""
    from edgezoo.jobs import memory
    from edgezoo.zoo import load

    matrix = tmp_path / "matrix.toml"
    matrix.write_text('out = "out"\ntargets = ["phone", "onnx"]\n[[models]]\nsource = "digits-cnn"\n')
    peak = memory.expected_peak(load("digits-cnn").saved_model_dir)
    events = []
    result = edgezoo.build(matrix, jobs=2, max_memory=int(1.5 * peak), on_event=events.append)
    assert result.exit_code == 0, [c.error for c in result.cells]
    order = [(e["event"], e["cell"]) for e in events if e["event"] in ("job_started", "job_finished")]
    assert [kind for kind, _ in order] == ["job_started", "job_finished", "job_started", "job_finished"], order
    assert order[0][1] == order[1][1] and order[2][1] == order[3][1]  # each job finished before the next was admitted

    _, together = local_build
    kinds = [e["event"] for e in together if e["event"] in ("job_started", "job_finished")]
    if 0.9 * (memory.available_bytes() or 0) >= 2 * peak:
        assert kinds[:2] == ["job_started", "job_started"], kinds


def test_a_matrix_with_a_detector_checks_every_cell_by_its_boxes(tmp_path):
    """The build prepares each model's reference as the pipeline does (the model's task): the detector's cells are judged
    by matched boxes against the detector's own reference, not refused because a plain tensor reference cannot run it."""
    from edgezoo.tasks import detection

    (tmp_path / "matrix.toml").write_text('out = "out"\ntargets = ["phone", "onnx"]\n[[models]]\nsource = "shapes-detector"\n')
    result = edgezoo.build(tmp_path / "matrix.toml", jobs=1)
    assert {c.folder: (c.state, c.exit_code) for c in result.cells} == {"phone": ("built", 0), "onnx": ("built", 0)}, \
        [c.error for c in result.cells]
    from edgezoo.validate.detection import compare_detections, split

    model = edgezoo.load("shapes-detector")
    reference = detection.run_reference(model, model.load_data().heldout)
    for cell in result.cells:
        outputs = {o["name"]: o for o in cell.report["parity"]["outputs"]}
        boxes = outputs["detections"]
        assert boxes["kind"] == "detections" and boxes["detection_recall"] >= 0.95, boxes
        assert {"raw_boxes", "raw_scores"} <= set(outputs)  # the pre-NMS heads, compared as tensors beside the boxes
        own = split(detection.target_reference(model, reference, edgezoo.resolve_profile(cell.target)), detection.image_size(model), 0)
        expected, _ = compare_detections(own, own, score_threshold=detection.score_threshold(model), margin=0.0)
        assert boxes["reference_detections"] == expected["reference_detections"] >= 40  # the detector's own reference, per target

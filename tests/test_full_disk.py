"""A write that fails mid-artifact: the real CLI with its file-size limit lowered (RLIMIT_FSIZE, with SIGXFSZ ignored
so the write raises EFBIG instead of killing the process), as a full disk would make it fail. Exit 4 with a message
that says there was no room, nothing published, and the user's existing output left exactly as it was."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys

from tests.conftest import REPO

LIMIT_BYTES = 48 << 10  # digits-cnn's float16 .tflite is about 80 KiB: its write fails part-way


def _limited():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ignored dispositions survive exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _user_output(out, target):
    folder = out / "digits-cnn" / target
    folder.mkdir(parents=True)
    (folder / "model.tflite").write_bytes(b"the user's earlier artifact")
    (folder / "report.json").write_text('{"earlier": true}')
    (out / "digits-cnn" / "report.json").write_text('{"earlier run": true}')
    return _files(out)


def test_a_full_disk_fails_cleanly_and_keeps_existing_output(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    runs = {}
    for case, existing, extra in (("no-force", "onnx", []), ("force", "phone", ["--force"])):
        out = tmp_path / case
        before = _user_output(out, existing)
        command = [sys.executable, "-m", "edgezoo", "convert", "digits-cnn", "--target", "phone", "--out", str(out), *extra]
        runs[case] = (out, before, subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                    text=True, preexec_fn=_limited))
    for case, (out, before, proc) in runs.items():
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 4, (case, stderr[-3000:])
        assert "a write failed: File too large (more than this process may write to one file" in stderr, stderr[-3000:]
        assert "Nothing was published" in stderr and "Traceback" not in stderr
        after = _files(out)
        summary_files = {"digits-cnn/report.json", "digits-cnn/report.html"}  # this run's summary, which lists the failure
        assert {k: v for k, v in after.items() if k not in summary_files} == {k: v for k, v in before.items() if k not in summary_files}
        assert not list(out.rglob(".*partial*")) and not list(out.rglob(".*tmp-*")) and not list(out.rglob(".*.old-*"))
        if case == "no-force":
            assert not (out / "digits-cnn" / "phone").exists()
        summary = json.loads((out / "digits-cnn" / "report.json").read_text())  # written whole (atomically), never half
        if "targets" in summary:  # it fitted under the limit: it records the failure
            assert [(t["target"], t.get("exit_code")) for t in summary["targets"]] == [("phone", 4)]

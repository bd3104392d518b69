"""Stopping a run: the real CLI in a child process, signalled in the middle of `convert digits-cnn`. SIGTERM and
SIGINT remove every staging folder, stop the child processes (Chromium and its helpers, the TFLM child, Node) and exit
143 / 130; after a SIGKILL, which nothing can catch, the next run removes the staging folder the dead process left
(found by the pid recorded in it) and says so."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

WAIT_SECONDS = 240


def _start(out: Path, *targets: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "edgezoo", "convert", "digits-cnn", "--out", str(out), *(f"--target={t}" for t in targets)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    # A session of its own: every process it starts keeps its process group, which the test searches afterwards.
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def _tree(root: int) -> list[int]:
    """Live (non-zombie) processes below root, by parent links, or in root's process group (orphans keep it)."""
    stats = {int(p.name): s for p in Path("/proc").glob("[0-9]*") if (s := _stat(int(p.name))) and s[0] != "Z"}
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, s in stats.items() if int(s[1]) in frontier} - found
        found |= frontier
    return sorted(found | {pid for pid, s in stats.items() if int(s[2]) == root and pid != root})


def _staging(out: Path) -> list[Path]:
    return sorted(out.glob("*/.*.partial-*"))


class Watcher(threading.Thread):
    """Polls one run until `ready()` holds, then sends the signal; records what ran below the run at that moment."""

    def __init__(self, proc: subprocess.Popen, ready, signum: int, what: str):
        super().__init__(daemon=True)
        self.proc, self.ready, self.signum, self.what = proc, ready, signum, what
        self.children: list[int] = []
        self.commands: list[str] = []
        self.staging: list[Path] = []
        self.problem: str | None = None
        self.start()

    def run(self):
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.problem = f"the run ended (exit {self.proc.returncode}) before {self.what}"
                return
            found = self.ready()
            if found:
                self.staging, self.children = found, _tree(self.proc.pid)
                self.commands = [_cmdline(pid) for pid in self.children]
                if self.signum == signal.SIGKILL:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # the run and everything it started: nothing can clean up
                else:
                    os.kill(self.proc.pid, self.signum)
                return
            time.sleep(0.03)
        self.problem = f"no {self.what} within {WAIT_SECONDS} s"

    def result(self) -> tuple[int, str]:
        _, stderr = self.proc.communicate(timeout=WAIT_SECONDS + 120)
        self.join()
        assert self.problem is None, f"{self.problem}: {stderr[-2000:]}"
        return self.proc.returncode, stderr


def _direct_children(pid: int) -> list[int]:
    return [int(c) for f in Path(f"/proc/{pid}/task").glob("*/children") for c in (f.read_text() if f.exists() else "").split()]


def _below(pid: int, levels: int) -> list[int]:
    found, frontier = [], [pid]
    for _ in range(levels):
        frontier = [child for parent in frontier for child in _direct_children(parent)]
        found += frontier
    return found


def _gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        alive = [pid for pid in pids if (s := _stat(pid)) and s[0] != "Z"]
        if not alive or time.monotonic() > deadline:
            return [f"{pid}: {_cmdline(pid)[:120]}" for pid in alive]
        time.sleep(0.1)


RUNS = {  # started together (they overlap, which keeps the tests' wall time down), each signalled by its test
    "sigterm": ("all",),  # all targets: the browser comes first, so Chromium runs when the signal arrives
    "sigint": ("microcontroller", "all"),  # the microcontroller first: the TFLM child runs when the signal arrives
    "sigkill": ("all",),
}


def _with_child(proc, out, word):
    """The staging folders, once a process below the run has `word` in its command line (else None)."""
    # The TFLM child lives about a second: look only at the run's children (its job server), theirs (the job workers
    # the server forked) and theirs, not all of /proc.
    pids = _below(proc.pid, levels=3) if word == "tflm_child" else _tree(proc.pid)
    return _staging(out) if _staging(out) and any(word in _cmdline(p) for p in pids) else None


def _owned_staging(out):
    """The staging folders once each holds its owner record (a kill between making the folder and writing the record
    would leave a folder the next run cannot judge: that is not what the SIGKILL test is about)."""
    found = _staging(out)
    return found if found and all((folder / ".edgezoo-owner").is_file() for folder in found) else None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs started together (they overlap, which keeps the wall time down); a watcher signals each at its moment."""
    root = tmp_path_factory.mktemp("signals")
    node_profile = root / "browser-node.toml"  # the browser target checked in Node (no built-in target uses Node)
    node_profile.write_text('extends = "browser"\nruntime = "tfjs-node"\n')
    plans = {  # run: (targets, signal, until what is running)
        "sigterm": (("all",), signal.SIGTERM, "chrom"),  # all targets: the browser comes first, so Chromium runs
        "sigint": (("all",), signal.SIGINT, "tflm_child"),  # the microcontroller's TFLM child
        "sigterm-node": ((str(node_profile),), signal.SIGTERM, "run_node.mjs"),  # TF.js in Node
        "sigkill": (("all",), signal.SIGKILL, None),
    }
    watchers = {}
    for name, (targets, signum, word) in plans.items():
        proc, out = _start(root / name, *targets), root / name
        ready = (lambda proc=proc, out=out, word=word: _with_child(proc, out, word)) if word else (lambda out=out: _owned_staging(out))
        watchers[name] = (Watcher(proc, ready, signum, f"a staging folder and a {word or 'staging'} process"), out)
    yield watchers
    for watcher, _ in watchers.values():  # whatever a failed test left: the run and its whole process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(watcher.proc.pid, signal.SIGKILL)
        watcher.proc.wait()


def test_after_sigkill_the_next_run_removes_the_stale_staging_folder(runs):
    watcher, out = runs["sigkill"]
    watcher.result()
    stale = watcher.staging
    assert _staging(out) == stale and (stale[0] / ".edgezoo-owner").is_file()
    owner = json.loads((stale[0] / ".edgezoo-owner").read_text())["pid"]
    assert owner in (watcher.proc.pid, *watcher.children)  # the run, or the job worker that wrote the target (edgezoo/jobs/)

    again = _start(out, "phone")
    try:
        _, stderr = again.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(again.pid, signal.SIGKILL)
    assert again.returncode == 0, stderr[-3000:]
    assert f"removed {stale[0]}, a staging folder left by process {owner}, which is no longer running" in stderr
    assert _staging(out) == [] and (out / "digits-cnn" / "phone" / "model.tflite").is_file()
    assert not (out / "digits-cnn" / "phone" / ".edgezoo-owner").exists()


@pytest.mark.parametrize("run, exit_code, child", [("sigterm", 143, "chrom"), ("sigint", 130, "tflm_child"),
                                                   ("sigterm-node", 143, "run_node.mjs")])
def test_signal_removes_staging_and_stops_children(runs, run, exit_code, child):
    watcher, out = runs[run]
    returncode, stderr = watcher.result()
    assert returncode == exit_code, stderr[-3000:]
    assert f"interrupted by {signal.Signals(watcher.signum).name}" in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert watcher.staging and _staging(out) == [] and not list(out.rglob(".*.partial-*"))
    assert any(child in command for command in watcher.commands), watcher.commands  # it ran when the signal came
    assert _gone(watcher.children) == [], "child processes outlived the run"
    assert _gone(_tree(watcher.proc.pid)) == []


def test_stale_folders_are_judged_by_their_owner(tmp_path):
    """In process: a dead owner's staging folder goes, a replaced folder its dead owner was swapping comes back,
    a live owner's folder and a non-empty folder without an owner record stay."""
    import json

    from edgezoo import _processes
    from edgezoo.output import OWNER_FILE, OutputTree

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    model = tmp_path / "m"
    for name, owner in ((".phone.partial-dead", {**_processes.identity(), "pid": int(dead), "start_time": None}),
                        (".onnx.partial-live", _processes.identity()), (".browser.partial-unknown", None)):
        (model / name).mkdir(parents=True)
        if owner is not None:
            (model / name / OWNER_FILE).write_text(json.dumps(owner))
    (model / f".microcontroller.old-{dead}").mkdir()
    (model / f".microcontroller.old-{dead}" / "model.tflite").write_bytes(b"the user's")
    # Killed before its owner record was written: empty and old goes, empty but just made stays.
    (model / ".phone-int8.partial-killed").mkdir()
    os.utime(model / ".phone-int8.partial-killed", (time.time() - 3600, time.time() - 3600))
    (model / ".tfjs.partial-starting").mkdir()

    notes = OutputTree(tmp_path, "m", force=False).check(["phone"])
    assert sorted(p.name for p in model.iterdir()) == [".browser.partial-unknown", ".onnx.partial-live", ".tfjs.partial-starting",
                                                        "microcontroller"]
    assert any("partial-killed, an empty staging folder whose process stopped" in n for n in notes)
    assert (model / "microcontroller" / "model.tflite").read_bytes() == b"the user's"
    assert any(f"left by process {dead}, which is no longer running" in n for n in notes)
    assert any(f"put back {model / 'microcontroller'}" in n for n in notes)

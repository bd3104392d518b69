"""The local executor's job server (edgezoo/jobs/forkserver.py), on real processes: each job runs in a worker process
forked for it alone, and a job server killed mid-run fails the jobs it was running, the run goes on in a new server,
nothing hangs and nothing is left running. digits-cnn, conversion-only jobs (the cheapest real jobs)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgezoo import _processes
from bench import convert_only
from tests.conftest import REPO

SERVER = "edgezoo.jobs.forkserver"  # in the command line of the server and of the workers it forks (fork, no exec)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _ours() -> list[int]:
    """The job servers and job workers below this test process that still run."""
    return [pid for pid in _processes.descendants() if SERVER in _cmdline(pid) and _processes._running(pid)]


def _none_left(seconds: float = 15.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while _ours() and time.monotonic() < deadline:
        time.sleep(0.1)
    return [f"{pid}: {_cmdline(pid)}" for pid in _ours()]


class Sampler(threading.Thread):
    """Records, while a run goes on, every process below this one and its parent."""

    def __init__(self):
        super().__init__(daemon=True)
        self.parents: dict[int, int | None] = {}
        self.done = threading.Event()
        self.start()

    def run(self):
        while not self.done.is_set():
            for pid in _processes.descendants():
                if SERVER in _cmdline(pid):
                    self.parents.setdefault(pid, _parent(pid))
            time.sleep(0.05)


def test_each_job_runs_in_a_worker_process_of_its_own_forked_by_the_job_server(tmp_path):
    sampler = Sampler()
    try:
        outcomes = convert_only.run("digits-cnn", None, ("phone", "onnx"), tmp_path / "out", jobs=2)
    finally:
        sampler.done.set()
        sampler.join()
    assert [o.result.failure for o in outcomes] == [None, None]
    workers = [int(o.worker.removeprefix("pid ")) for o in outcomes]
    servers = {pid for pid, parent in sampler.parents.items() if parent == os.getpid()}
    assert len(servers) == 1, sampler.parents  # one server for the run, a child of this process
    assert len(set(workers)) == 2 and not set(workers) & servers and os.getpid() not in workers
    assert all(sampler.parents.get(pid) in servers for pid in workers), (workers, sampler.parents)  # forked by the server
    assert _none_left() == []


def test_a_job_server_killed_mid_run_fails_its_running_job_and_the_run_goes_on(tmp_path, monkeypatch):
    """One job at a time: phone hangs (test hook) and its server is killed with SIGKILL; phone is a failed job that
    says so, its worker ends with the server (PR_SET_PDEATHSIG), and onnx then runs in a new server."""
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("EDGEZOO_TEST_JOB_FAULT", "phone:hang")
    monkeypatch.setenv("EDGEZOO_TEST_JOB_PIDS", str(pids))
    killed: dict[str, int] = {}

    def kill_the_server():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            if (pids / "phone.pid").exists():
                worker = int((pids / "phone.pid").read_text())
                server = _parent(worker)
                assert server is not None and SERVER in _cmdline(server) and _parent(server) == os.getpid()
                os.kill(server, signal.SIGKILL)
                killed.update(worker=worker, server=server)
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_server, daemon=True)
    killer.start()
    started = time.monotonic()
    phone, onnx = convert_only.run("digits-cnn", None, ("phone", "onnx"), tmp_path / "out", jobs=1)
    killer.join(5)
    assert killed, "the phone job never started hanging"
    assert time.monotonic() - started < 120
    error = str(phone.result.failure.error)
    assert "the job server process ended (it was ended by SIGKILL" in error and "while the job ran" in error, error
    assert phone.worker == f"pid {killed['worker']}"
    assert onnx.result.failure is None and (tmp_path / "out" / "digits-cnn" / "onnx" / "model.onnx").is_file()
    assert int(onnx.worker.removeprefix("pid ")) not in killed.values()
    assert not (tmp_path / "out" / "digits-cnn" / "phone").exists() and not list((tmp_path / "out").rglob(".*.partial-*"))
    assert not _processes._running(killed["worker"]) and _none_left() == []


def test_a_run_killed_with_sigkill_takes_its_job_server_and_workers_with_it(tmp_path):
    """SIGKILL to the run's process alone (not its group): the kernel sends the server SIGTERM (PR_SET_PDEATHSIG), the
    server stops its worker and ends; nothing of the run is left running."""
    pids = tmp_path / "pids"
    pids.mkdir()
    script = f"from bench import convert_only; convert_only.run('digits-cnn', None, ('phone',), {str(tmp_path / 'out')!r}, jobs=1)"
    env = {**os.environ, "EDGEZOO_TEST_JOB_FAULT": "phone:hang", "EDGEZOO_TEST_JOB_PIDS": str(pids), "PYTHONPATH": str(REPO)}
    run = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (pids / "phone.pid").exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (pids / "phone.pid").exists(), run.stderr.read().decode()[-2000:] if run.poll() is not None else "no hang"
        worker = int((pids / "phone.pid").read_text())
        server = _parent(worker)
        assert server is not None and _parent(server) == run.pid and SERVER in _cmdline(server)
        run.kill()
        run.wait()
        deadline = time.monotonic() + 15
        while any(_processes._running(pid) for pid in (worker, server)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _processes._running(worker) and not _processes._running(server)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)  # whatever a failed test left (the group keeps the run's session)
        run.wait()

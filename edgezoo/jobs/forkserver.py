"""The job server: `python -m edgezoo.jobs.forkserver`, one per local run. It imports TensorFlow and the converters
once, then forks a fresh worker process for each job, so the jobs of a run pay that import (about 5 s of CPU) once.

Each forked child is its job's worker process, as a process started for it would be: one job, then it exits; a crash,
an abort() or the out-of-memory killer ends that child alone, with its own exit status. The server imports what a job
needs but never runs a TensorFlow op nor starts TensorFlow's eager runtime: its thread pools do not survive a fork
(it checks before forking; at that point the process has 4 OS threads, none of TensorFlow's pools). What the child
inherits is the environment the server was started with: TensorFlow's thread counts (worker.thread_environment) are
read when the child's first op starts the runtime.

Protocol (edgezoo/jobs/local.py is the other end):
    stdin, a line per job:  ID<TAB>JOB_FILE<TAB>OUTCOME_FILE<TAB>LOG_FILE   (end of input: stop)
    stdout, a line per event:  `ready PID` once imported; `started ID PID`; `exited ID STATUS`, STATUS as
    Popen.returncode gives it (the exit code, or minus the signal's number).
The executor is not the children's parent and cannot wait for them: the server reaps them and reports each exit. The
server ignores SIGINT (a Ctrl-C reaches the whole process group; the parent handles it and stops the jobs); on SIGTERM,
or when its stdin closes, it sends SIGTERM to the children still running, reports their exits and exits (a SIGTERM
while it still imports ends it at once: nothing runs in it yet); the kernel sends it SIGTERM when the parent ends
(PR_SET_PDEATHSIG), and each child SIGTERM when the server ends.
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import sys
import time
import traceback

POLL_SECONDS = 0.05  # how often the server looks for ended children between lines on its stdin
STOP_GRACE_SECONDS = 10.0  # for a child sent SIGTERM to remove its staging folder and stop its own children
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_stopping = False


def _on_sigterm(signum, frame) -> None:
    global _stopping
    _stopping = True


def _say(*fields) -> bool:
    """One event line on stdout, unbuffered (a forked child must not inherit half a line); False once the parent is gone."""
    try:
        os.write(1, (" ".join(str(f) for f in fields) + "\n").encode())
        return True
    except OSError:
        return False


def _import_for_jobs() -> None:
    """What a job imports, done once here: as a worker process would before its job, plus the converters' own modules."""
    from edgezoo import _tf

    _tf.set_verbose(os.environ.get("EDGEZOO_VERBOSE") == "1")
    _tf.configure_environment()
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")  # tensorflowjs imports tensorflow_decision_forests
    import edgezoo.target_run  # noqa: F401 (what a job runs)

    _tf.tf()
    with _tf.quiet_native_output():
        import tensorflowjs.converters.tf_saved_model_conversion_v2  # noqa: F401
        import tf2onnx.convert  # noqa: F401
        import tf2onnx.tf_loader  # noqa: F401


def _fork_safe() -> str | None:
    """Why forking now would be unsafe (TensorFlow's runtime already started, with threads a child would lack), or None."""
    from tensorflow.python.eager import context

    started = context.context_safe()
    if started is not None and started._context_handle is not None:
        return "TensorFlow's eager runtime was started in the job server before it forked (an import ran a TensorFlow op)"
    return None


def _start_child(line: bytes, children: dict[int, str]) -> None:
    job_id, job_path, outcome_path, log_path = line.decode().split("\t")
    sys.stdout.flush()
    sys.stderr.flush()
    # Blocked across the fork: a SIGTERM for the child before it has the worker's handlers is held, not lost in ours.
    server = os.getpid()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        pid = os.fork()
    except OSError as exc:  # out of memory or of processes: that job's failure, in its log, and the server goes on
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        with open(log_path, "w") as log:
            log.write(f"the job server could not fork a worker process for this job: {exc}\n")
        _say("exited", job_id, 1)
        return
    if pid == 0:
        _child(server, previous, job_path, outcome_path, log_path)  # never returns
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    children[pid] = job_id
    _say("started", job_id, pid)


def _child(server: int, mask, job_path: str, outcome_path: str, log_path: str) -> None:
    """In the forked child: the job's worker process, with a worker's signal handling and its own log, then its exit."""
    from edgezoo.jobs import worker

    code = 1
    try:
        worker._die_with_parent()
        if os.getppid() != server:  # the server ended between the fork and the line above: nobody reports this job
            os._exit(1)
        for signum in _STOP_SIGNALS:
            signal.signal(signum, worker._on_signal)
        _redirect(log_path)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a SIGTERM held since the fork arrives here, as Stopped
        code = worker.serve(job_path, outcome_path)
    except worker.Stopped as stop:  # stopped before its job began: nothing of it to unwind
        code = 128 + stop.signum
    except BaseException:  # noqa: BLE001 -- whatever happened, this process must not return into the server's loop
        traceback.print_exc()
        code = 1
    finally:
        # As a process exits normally: atexit handlers (the job's scratch folders) run, then the streams are flushed.
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _redirect(log_path: str) -> None:
    """stdin from /dev/null, stdout and stderr to the job's log: the child holds none of the server's pipes."""
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)


def _reap(children: dict[int, str], block: bool = False) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in children:
            _say("exited", children.pop(pid), os.waitstatus_to_exitcode(status))


def _stop(children: dict[int, str]) -> None:
    """SIGTERM to every child still running; SIGKILL to those still there after the grace period; every exit reported."""
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while children and time.monotonic() < deadline:
        _reap(children)
        time.sleep(POLL_SECONDS)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    _reap(children, block=True)


def serve() -> None:
    """Read job lines until stdin closes or SIGTERM comes; fork a child per line; report each child's start and exit."""
    children: dict[int, str] = {}
    pending = b""
    try:
        while not _stopping:
            _reap(children)
            readable, _, _ = select.select([0], [], [], POLL_SECONDS)
            if not readable:
                continue
            chunk = os.read(0, 1 << 16)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line.strip() and not _stopping:
                    _start_child(line, children)
    finally:
        _stop(children)


def main() -> int:
    from edgezoo.jobs import worker

    worker._die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # SIGTERM keeps its default while importing: nothing runs yet, it just ends
    if not hasattr(os, "fork"):
        sys.stderr.write("the local executor forks its worker processes, and this platform has no fork().\n")
        return 2
    _import_for_jobs()
    unsafe = _fork_safe()
    if unsafe:
        sys.stderr.write(f"{unsafe}; it will not fork a worker.\n")
        return 3
    signal.signal(signal.SIGTERM, _on_sigterm)
    if _say("ready", os.getpid()):
        serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `edgezoo` command: a thin layer over the Python API. Exit codes follow DESIGN.md:
0 success, 1 parity below tolerance, 2 bad usage or input, 3 target cannot be met, 4 converter or runtime failed.

One module per command, each with `add(subparsers)` that declares its flags and sets its handler; COMMANDS lists
them in the order `edgezoo --help` shows them. A new command is a new module and one entry here.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from edgezoo.cli import bench, build, convert, explore, finetune, inspect, targets, validate, zoo
from edgezoo.cli.console import Console
from edgezoo.errors import EdgezooError

EXIT_OK, EXIT_PARITY, EXIT_USAGE, EXIT_TARGET, EXIT_FAILURE = 0, 1, 2, 3, 4
COMMANDS = (convert, build, finetune, validate, bench, inspect, explore, zoo, targets)


def build_parser() -> argparse.ArgumentParser:
    from edgezoo.version import __version__

    parser = argparse.ArgumentParser(
        prog="edgezoo",
        description="Take pretrained models from a zoo to edge devices (TFLite, TF.js, ONNX) and prove parity on the real runtime.",
    )
    parser.add_argument("--version", action="version", version=f"edgezoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add(subparsers)
    return parser


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the main thread is, so that every `with` and `finally` on the way out runs:
    staging folders are removed, subprocess.run kills its child (TFLM, Node)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame):
    for other in STOP_SIGNALS:  # a second signal must not cut the clean-up short (SIGKILL still can)
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupted(exc: KeyboardInterrupt) -> int:
    """After the unwinding: stop what is left below this process (the browser and its helpers), say so, 128 + signal."""
    from edgezoo import _processes

    signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    from edgezoo.formats.tfjs import run_browser as tfjs_browser

    tfjs_browser.forget_shared_session()  # its driver is stopped below; closing it at exit would wait for a dead process
    _processes.stop_descendants()
    print(f"edgezoo: interrupted by {signal.Signals(signum).name}; child processes stopped and staging folders removed, "
          "no partial output was kept.", file=sys.stderr)
    return 128 + signum


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from edgezoo import _tf

    _tf.set_verbose(args.verbose)
    _tf.configure_environment()
    console = Console(json_mode=args.json, verbose=args.verbose)
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _on_signal)
    try:
        return args.handler(args, console)
    except EdgezooError as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"edgezoo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except BrokenPipeError:  # the reader went away (`edgezoo zoo list | head`): nothing left to say, and no one to say it to
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return EXIT_OK
    except Exception as exc:  # a bug or an unwrapped third-party failure: say so, keep the code distinct
        if args.verbose:
            raise
        print(f"edgezoo: internal error: {type(exc).__name__}: {exc}. Re-run with --verbose for the traceback.", file=sys.stderr)
        return EXIT_FAILURE


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()

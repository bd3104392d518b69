"""Where the CLI talks: progress and warnings on stderr (a spinner on a terminal), results on stdout."""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import threading
import time


class Console:
    """Where the CLI talks: progress and warnings on stderr (a spinner on a terminal), results on stdout."""

    def __init__(self, json_mode: bool, verbose: bool):
        self.json_mode = json_mode
        self.verbose = verbose
        self.tty = sys.stderr.isatty()

    @contextlib.contextmanager
    def step(self, text: str):
        if self.json_mode:
            yield
            return
        start = time.monotonic()
        if not self.tty:
            print(f"... {text}", file=sys.stderr, flush=True)
            yield
            return
        done = threading.Event()

        def spin():
            for frame in itertools.cycle("|/-\\"):
                if done.wait(0.1):
                    break
                print(f"\r{frame} {text} ({time.monotonic() - start:.0f}s)", end="", file=sys.stderr, flush=True)

        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
        try:
            yield
        finally:
            done.set()
            spinner.join()
            print(f"\r\033[K  {text} ({time.monotonic() - start:.1f}s)", file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        print(f"WARNING: {text}", file=sys.stderr, flush=True)

    def result(self, data: dict, human: str) -> None:
        print(json.dumps(data, indent=2) if self.json_mode else human, flush=True)

    def progress(self, name: str, done: int, total: int | None) -> None:
        """Download progress: a live line on a terminal, a start and an end line otherwise."""
        if self.json_mode:
            return
        figure = f"{_size(done)} of {_size(total)}" if total else _size(done)
        finished = total is not None and done >= total
        if self.tty:
            print(f"\r\033[K  downloading {name}: {figure}", end="\n" if finished else "", file=sys.stderr, flush=True)
        elif done == 0 or finished:
            print(f"... downloading {name}: {figure}", file=sys.stderr, flush=True)


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.1f} kB"

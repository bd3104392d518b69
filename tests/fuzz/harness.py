"""The property every fuzzed parser must keep, and the tally `make fuzz` prints.

For each generated input the parser must either succeed or raise an EdgezooError with exit code 2 (bad input).
Anything else is a failure: another exception, an EdgezooError with another exit code, no answer within the
case's timeout (a hang), or a file written or changed outside the output folder. Failures are collected, not
raised at once, so that one run counts every failing case; the test fails at its end, listing them.

The timeout is an alarm (SIGALRM) that interrupts Python code; a hang inside native code shows when it returns.

Profiles (EDGEZOO_FUZZ_PROFILE): `suite` (the default; a few hundred examples per parser, tens for the parsers
that reach TensorFlow's runtimes) and `fuzz` (`make fuzz`: 10,000 per parser). Both are derandomized: the same
code generates the same cases, so a CI failure reproduces.
"""

from __future__ import annotations

import contextlib
import os
import signal
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, settings

from edgezoo.errors import EdgezooError

PROFILE = os.environ.get("EDGEZOO_FUZZ_PROFILE", "suite")
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.large_base_example]
settings.register_profile("suite", max_examples=200, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_QUIET, print_blob=False)
settings.register_profile("fuzz", max_examples=10_000, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_QUIET, print_blob=False)
SHOWN_FAILURES = 15

TALLIES: dict[str, "Tally"] = {}  # parser name -> tally, printed by tests/fuzz/conftest.py


def examples(suite: int, fuzz: int = 10_000) -> settings:
    """Hypothesis settings of the active profile with this parser's number of examples."""
    return settings(settings.get_profile(PROFILE), max_examples=fuzz if PROFILE == "fuzz" else suite)


class CaseTimeout(BaseException):
    """Raised by the alarm in the case that ran too long (a BaseException, so no parser's `except Exception` eats it)."""


@contextlib.contextmanager
def _alarm(seconds: float):
    def ring(signum, frame):
        raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _snapshot(root: Path, skip: Path | None) -> dict[str, tuple[int, int]]:
    found = {}
    for folder, dirs, files in os.walk(root):
        if skip is not None and Path(folder) == skip:
            dirs.clear()
            continue
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                found[path] = (info.st_size, info.st_mtime_ns)
    return found


@dataclass
class Tally:
    parser: str
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)  # accepted, refused (exit 2), failed
    failures: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)  # failure kind (exception and where) -> count
    refusals: Counter = field(default_factory=Counter)  # EdgezooError subclass -> count

    @classmethod
    def named(cls, parser: str) -> "Tally":
        return TALLIES.setdefault(parser, cls(parser))

    def run(self, call: Callable[[], object], shown_input: object, *, sandbox: Path, out_dir: Path | None = None,
            timeout: float = 20.0) -> None:
        """One case: `call()` must succeed or raise EdgezooError(exit 2), in time, writing only into out_dir."""
        self.cases += 1
        before = _snapshot(sandbox, out_dir)
        problem = None
        try:
            with _alarm(timeout):
                call()
            self.outcomes["accepted"] += 1
        except EdgezooError as exc:
            if exc.exit_code == 2:
                self.outcomes["refused"] += 1
                self.refusals[type(exc).__name__] += 1
            else:
                problem = (f"{type(exc).__name__} (exit {exc.exit_code})", f"{type(exc).__name__} exit {exc.exit_code}: {exc}")
        except CaseTimeout:
            problem = ("hang", f"no answer within {timeout:g} s")
        except Exception as exc:  # the failures this property exists to find
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            problem = (f"{type(exc).__name__} at {where}", f"{type(exc).__name__} at {where}: {exc}")
        after = _snapshot(sandbox, out_dir)
        changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
        if changed and problem is None:
            problem = ("wrote outside the output folder", f"wrote outside the output folder: {', '.join(changed[:5])}")
        if problem is not None:
            self.outcomes["failed"] += 1
            self.kinds[problem[0]] += 1
            if len(self.failures) < SHOWN_FAILURES:
                self.failures.append(f"{problem[1][:400]}\n    input: {str(shown_input)[:300]}")

    def verdict(self) -> str:
        lines = [f"{self.parser}: {self.cases} cases, {self.outcomes['failed']} failures"]
        lines += [f"  {count} x {kind}" for kind, count in self.kinds.most_common()]
        lines += [f"  - {failure}" for failure in self.failures]
        return "\n".join(lines)

    def check(self) -> None:
        assert self.cases > 0, f"{self.parser}: no case ran"
        assert not self.outcomes["failed"], self.verdict()

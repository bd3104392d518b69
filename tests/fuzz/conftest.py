"""Prints, after a run of the fuzzers, each parser's count of cases and failures (the figures of `make fuzz`)."""

from __future__ import annotations

from tests.fuzz.harness import PROFILE, TALLIES


def pytest_terminal_summary(terminalreporter):
    if not TALLIES:
        return
    terminalreporter.section(f"fuzzed parsers (profile {PROFILE})")
    width = max(len(name) for name in TALLIES)
    terminalreporter.write_line(f"{'parser':{width}}  {'cases':>7}  {'accepted':>8}  {'refused':>7}  {'failures':>8}")
    for name, tally in TALLIES.items():
        o = tally.outcomes
        terminalreporter.write_line(f"{name:{width}}  {tally.cases:>7}  {o['accepted']:>8}  {o['refused']:>7}  {o['failed']:>8}")
        for kind, count in tally.kinds.most_common():
            terminalreporter.write_line(f"{'':{width}}    {count} x {kind}")
        if tally.refusals:
            terminalreporter.write_line(f"{'':{width}}    refused as: " + ", ".join(f"{n} {c}" for n, c in tally.refusals.most_common()))

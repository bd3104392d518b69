"""Shared fixtures: the bundled model, its data, and a way to run the real CLI in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def digits():
    import edgezoo

    return edgezoo.load("digits-cnn")


@pytest.fixture(scope="session")
def digits_data(digits):
    from edgezoo.calibration import from_model_data

    return from_model_data(digits)


def run_edgezoo(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: a separate process, its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "edgezoo", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},  # the CLI must be quiet on its own
    )


@pytest.fixture
def cli():
    return run_edgezoo

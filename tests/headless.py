"""Pages as a person sees them: Debian's Chromium, headless, takes a screenshot of a local file."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
    "--proxy-server=127.0.0.1:9",  # any request leaving the page would fail: the page must need none
    "--hide-scrollbars",
)


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 1400, timeout: float = 90) -> Path:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make install` installs Debian's chromium"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout,
        )
    assert png.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return png


def ink(png: Path) -> tuple[float, float]:
    """(standard deviation of the grey levels, share of pixels unlike the background): a blank page is (0, 0)."""
    from PIL import Image

    grey = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    values, counts = np.unique(grey, return_counts=True)
    background = values[np.argmax(counts)]
    return float(grey.std()), float(np.mean(np.abs(grey - background) > 16))

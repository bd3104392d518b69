"""Model Explorer overlays: node data from a real conversion's report lands on the nodes Model Explorer's own adapter
builds, and the page (the real server, headless Debian Chromium, nothing allowed off 127.0.0.1) draws the graph with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from edgezoo.cli import run as cli
from edgezoo.errors import UsageError
from edgezoo.formats.tfjs.run_browser import CHROMIUM, CHROMIUM_FLAGS
from edgezoo.reports import explorer

KEPT_FLOAT = "digits_cnn/dense"  # one layer in float: two precisions to tell apart on the page


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    """digits-cnn for phone-int8 with one layer kept in float, its per-layer SNR measured: a real target folder."""
    import edgezoo

    out = tmp_path_factory.mktemp("explorer")
    result = edgezoo.convert("digits-cnn", target="phone-int8", out_dir=out, explain_quantization=True, keep_float=(KEPT_FLOAT,))
    assert result.passed
    return out / "digits-cnn" / "phone-int8"


@pytest.fixture(scope="module")
def overlays(target, tmp_path_factory) -> list[Path]:
    report = json.loads((target / "report.json").read_text())
    return explorer.write_node_data(tmp_path_factory.mktemp("node-data"), report, target / "model.tflite")


def test_node_data_lands_on_the_graphs_nodes(target, overlays, tmp_path):
    nodes = explorer.graph_nodes(target / "model.tflite")
    ops = explorer.artifact_ops(target / "model.tflite")
    # The adapter names op nodes by operator index, and labels them with the op's name: each of our ids is that op.
    assert [nodes[op.node_id] for op in ops] == [op.op.lower() for op in ops]
    assert {p.stem for p in overlays} >= {"precision", "quantization-snr", "quantization-solo-snr", "placement-gpu-delegate"}
    for path in overlays:
        assert explorer.check_node_data(path, nodes) > 0
    precision = json.loads((overlays[0].parent / "precision.json").read_text())["results"]
    kept = [op.node_id for op in ops if op.layer == KEPT_FLOAT and op.op == "FULLY_CONNECTED"]
    assert [precision[i]["value"] for i in kept] == ["float32"]
    assert precision[next(op.node_id for op in ops if op.op == "CONV_2D")]["value"] == "int8"
    snr = json.loads((overlays[0].parent / "quantization-snr.json").read_text())["results"]
    assert all(0 < row["value"] < explorer.SNR_CAP_DB for row in snr.values()) and len(snr) >= 5

    # A broken overlay (ids one past the graph's) is caught, not silently drawn as nothing.
    broken = tmp_path / "broken.json"
    data = json.loads((overlays[0].parent / "precision.json").read_text())
    data["results"] = {str(int(k) + 100): v for k, v in data["results"].items()}
    broken.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="match no node"):
        explorer.check_node_data(broken, nodes)


def test_no_overlays_for_formats_model_explorer_cannot_open(tmp_path):
    assert explorer.write_node_data(tmp_path, {"format": "tfjs"}, tmp_path / "model.json") == []
    assert explorer.op_latency(tmp_path / "model.json", None) is None


def test_explore_refuses_bad_input(tmp_path, capsys):
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    (tmp_path / "model.tflite").write_bytes(b"not a flatbuffer")
    (tmp_path / "model.json").write_text("{}")
    for argument, words in ((tmp_path / "none.tflite", "does not exist"), (tmp_path / "model.json", "no adapter"),
                            (Path(__file__), "not an artifact"), (tmp_path / "model.tflite", "cannot read"),
                            (tmp_path / "model.onnx", "cannot read")):
        assert cli(["explore", str(argument), "--no-browser"]) == 2
        assert words in capsys.readouterr().err


def test_explore_command_serves_until_ctrl_c(target, tmp_path):
    """The real command in a child process: overlays made from report.json beside the artifact, the address printed,
    the server answering on it, and Ctrl+C stopping it all with exit 0."""
    artifact = tmp_path / "phone-int8" / "model.tflite"
    artifact.parent.mkdir()
    for name in ("model.tflite", "report.json"):
        (artifact.parent / name).write_bytes((target / name).read_bytes())
    child = subprocess.Popen([sys.executable, "-m", "edgezoo", "explore", str(artifact), "--no-browser"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = child.stdout.readline()
        assert line.startswith("Model Explorer: http://127.0.0.1:"), line + child.stderr.read() if not line else line
        url = line.split(": ", 1)[1].strip()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url.split("/?")[0] + "/check_health", timeout=10) as answer:
            assert answer.read() == b"model_explorer_ok"
        assert sorted(p.name for p in (artifact.parent / explorer.FOLDER).glob("*.json")) == [
            "placement-gpu-delegate.json", "precision.json", "quantization-snr.json", "quantization-solo-snr.json"]
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 0, child.stderr.read()
        with pytest.raises(OSError):  # the server went with it
            opener.open(url.split("/?")[0] + "/check_health", timeout=2)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def open_page(server, screenshot: Path, height: int = 800) -> tuple[list, list[str]]:
    """The served page in headless Chromium (every request off 127.0.0.1 blocked), every layer expanded, a screenshot
    taken: (the side panel's table rows as [(text, background colour) per cell], the blocked addresses)."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def loopback_only(route):  # the machine reaches no internet, and the page must not need it
        if urllib.parse.urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    # A browser parity run earlier in this test process keeps its Playwright started (the shared session), and Playwright's
    # sync API cannot start a second one beside it: that session is closed (the next browser run starts a new one).
    from edgezoo.formats.tfjs.run_browser import close_shared_session

    close_shared_session()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=[*CHROMIUM_FLAGS, "--enable-unsafe-swiftshader"])  # WebGL on the CPU
        try:
            page = browser.new_page(viewport={"width": 1200, "height": height})
            page.route("**/*", loopback_only)
            page.goto(server.url)
            page.wait_for_selector("text=Node data", timeout=30_000)  # the side panel's table of per-node values
            page.locator("mat-icon", has_text="unfold_more_double").first.click()  # expand every layer: op nodes drawn
            page.mouse.move(600, height - 20)  # off the button, so its tooltip does not cover the graph
            page.wait_for_timeout(1500)
            page.screenshot(path=str(screenshot))
            rows = page.evaluate("""() => [...document.querySelectorAll('tr')].map(row => [...row.cells].map(cell =>
                [cell.innerText.trim(), getComputedStyle(cell).backgroundColor]))""")
        finally:
            browser.close()
    return rows, blocked


def drawn_pixels(screenshot: Path, hex_colour: str) -> int:
    """How many pixels of the graph pane (not the side panel) have the colour: op nodes filled with it."""
    from PIL import Image

    pixels = np.asarray(Image.open(screenshot).convert("RGB"))[:, :820].astype(int)
    colour = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels - colour).max(axis=-1) <= 3).sum())


def test_model_explorer_draws_the_overlay_in_chromium(target, overlays, tmp_path):
    start = time.monotonic()
    precision = overlays[0].parent / "precision.json"
    screenshot = tmp_path / "model-explorer.png"
    with explorer.ExplorerServer(target / "model.tflite", [precision]) as server:
        rows, blocked = open_page(server, screenshot)
    print(f"Model Explorer screenshot: {screenshot} ({time.monotonic() - start:.1f} s); blocked: {sorted(set(blocked))}")

    # Only Google's web fonts are asked for off the machine (the page falls back from them); anything else is new.
    assert all(urllib.parse.urlsplit(url).hostname == "fonts.gstatic.com" for url in blocked), blocked
    # The side panel lists every op node with its overlay value, in the overlay's colour.
    shown = {(row[1][0], row[2][0]): row[2][1] for row in rows if len(row) == 3}
    assert shown[("conv_2d", "int8")] == _css(explorer.PRECISION_COLOURS["int8"])
    assert shown[("fully_connected", "float32")] == _css(explorer.PRECISION_COLOURS["float32"])
    # The graph itself (a WebGL canvas): op nodes filled with the overlay's colours.
    for kind in ("int8", "float32"):
        assert drawn_pixels(screenshot, explorer.PRECISION_COLOURS[kind]) > 300, f"no {kind} node drawn in {screenshot}"


def _css(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"

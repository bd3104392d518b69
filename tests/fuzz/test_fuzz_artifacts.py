"""Fuzzed artifacts given to `validate` (and read by the artifact readers `inspect` shares): damaged .tflite and
.onnx bytes (truncated, bit-flipped, oversized counts), and TF.js model.json files edited at random places, their
weight paths included. The readers must refuse or accept; a full validation must end in a verdict (passed or
failed parity, a report written into the output folder only) or a refusal, and never copy a file from outside
the artifact's folder into the output."""

from __future__ import annotations

import json
import secrets
import shutil

import numpy as np
import pytest
from hypothesis import given, strategies as st

from edgezoo.formats.tflite.flatbuffer import read_flatbuffer
from edgezoo.validate_artifact import ValidateOptions, artifact_kind, validate_artifact
from tests.fuzz.harness import Tally, examples
from tests.fuzz.mutations import damaged

SECRET = b"EDGEZOO-SECRET-" + secrets.token_hex(8).encode()  # in a file beside the artifact's folder: must never be copied


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, digits, digits_data):
    """digits-cnn as float32 .tflite, .onnx and TF.js, made by edgezoo's converters (no validation), and 4 inputs."""
    from tests.edge_formats import convert

    root = tmp_path_factory.mktemp("fuzz_artifacts")
    made = {fmt: convert(digits, fmt, root / fmt) for fmt in ("tflite", "onnx", "tfjs")}
    np.savez(root / "inputs.npz", **{name: array[:4] for name, array in digits_data.heldout.items()})
    return {"tflite": made["tflite"].path.read_bytes(), "onnx": made["onnx"].path.read_bytes(),
            "model.json": json.loads(made["tfjs"].path.read_text()),
            "shards": {f.name: f.read_bytes() for f in made["tfjs"].files[1:]}, "inputs": root / "inputs.npz"}


HOSTILE_PATHS = ["../secret.bin", "../../secret.bin", "/etc/hostname", "sub/../../secret.bin", "", ".", "..", "/", "a\x00b",
                 "group1-shard1of1.bin/", "%2e%2e/secret.bin", "\\..\\secret.bin", "~/secret.bin", "link.bin"]
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.sampled_from(HOSTILE_PATHS),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


@st.composite
def edited_json(draw, original):
    """model.json with a few values at random places deleted or replaced; weight paths favoured."""
    model = json.loads(json.dumps(original))
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 2)) == 0 and isinstance(model, dict) and isinstance(model.get("weightsManifest"), list) and model["weightsManifest"]:
            group = model["weightsManifest"][0]
            if isinstance(group, dict):
                group["paths"] = draw(st.lists(st.sampled_from(HOSTILE_PATHS), min_size=1, max_size=2) | json_values)
                continue
        parent, key = None, None
        node = model
        while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            parent, key = node, draw(st.sampled_from(keys))
            node = node[key]
        if parent is None:
            model = draw(json_values)
        elif draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(json_values)
    text = json.dumps(model).encode()
    return draw(damaged(text)) if draw(st.integers(0, 4)) == 0 else text


def _layout(folder, artifacts, kind, data):
    """The artifact in folder/model/, a secret beside that folder, a symlink to the secret inside it."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "model").mkdir(parents=True)
    (folder / "secret.bin").write_bytes(SECRET)
    (folder / "model" / "link.bin").symlink_to(folder / "secret.bin")
    if kind == "model.json":
        for name, shard in artifacts["shards"].items():
            (folder / "model" / name).write_bytes(shard)
    path = folder / "model" / {"tflite": "model.tflite", "onnx": "model.onnx", "model.json": "model.json"}[kind]
    path.write_bytes(data)
    return path


def _no_secret_copied(out):
    for file in out.rglob("*"):
        if file.is_file() and SECRET in file.read_bytes():
            raise AssertionError(f"{file} holds a file from outside the artifact's folder")


def _strategy(kind, artifacts):
    return edited_json(artifacts["model.json"]) if kind == "model.json" else damaged(artifacts[kind])


@pytest.mark.parametrize("kind", ["tflite", "onnx", "model.json"])
def test_artifact_readers(tmp_path, artifacts, kind):
    tally = Tally.named(f"artifact reader {kind}")

    def read(path):
        artifact_kind(path).inspect(path)
        if kind == "tflite":
            read_flatbuffer(path.read_bytes())

    @given(_strategy(kind, artifacts))
    @examples(100)
    def case(data):
        path = _layout(tmp_path / "case", artifacts, kind, data)
        tally.run(lambda: read(path), data[:200], sandbox=tmp_path, timeout=30)

    case()
    tally.check()


@pytest.mark.parametrize("kind, suite", [("tflite", 12), ("onnx", 12), ("model.json", 6)])
def test_validate_on_damaged_artifacts(tmp_path, artifacts, digits, kind, suite):
    tally = Tally.named(f"validate {kind}")

    def validate(path, out):
        validate_artifact(digits, path, ValidateOptions(out_dir=out, force=True, calibration=artifacts["inputs"]))
        _no_secret_copied(out)

    @given(_strategy(kind, artifacts))
    @examples(suite, fuzz=500)
    def case(data):
        path = _layout(tmp_path / "case", artifacts, kind, data)
        out = tmp_path / "case" / "out"
        tally.run(lambda: validate(path, out), data[:200], sandbox=tmp_path / "case", out_dir=out, timeout=120)

    case()
    tally.check()

"""Fuzzed fine-tune data files: .npz files meant to hold images `x` and labels `y` (and optional `class_names`) of every
dtype and shape, with pickles, huge claimed shapes, missing or extra members and damaged bytes, read as
`edgezoo finetune --data` reads them."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from hypothesis import given, strategies as st

from edgezoo.transfer.data import read_labelled
from tests.fuzz.harness import Tally, examples
from tests.fuzz.mutations import damaged
from tests.fuzz.test_fuzz_data import MARKER, _member, arrays, claimed_shape, npy_bytes

LABELS = st.one_of(
    st.lists(st.integers(-2, 4), min_size=0, max_size=8).map(lambda v: np.asarray(v, np.int64)),
    st.lists(st.sampled_from(["cat", "dog", "", "é"]), min_size=0, max_size=8).map(np.asarray),
    st.lists(st.floats(allow_nan=True), min_size=0, max_size=8).map(np.asarray),
    arrays(),
)
IMAGES = st.one_of(
    st.integers(0, 8).flatmap(lambda n: st.sampled_from([(n, 8, 8), (n, 8, 8, 1), (n, 8, 8, 3), (n, 4, 4, 2)])).map(
        lambda shape: np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)),
    arrays(),
)


def _valid() -> dict:
    """Two classes of six 8x8 images: a file the reader accepts, before the strategy edits it."""
    pixels = np.random.default_rng(1).integers(0, 256, (12, 8, 8)).astype(np.uint8)
    return {"x": pixels, "y": np.repeat([0, 1], 6)}


@st.composite
def labelled_npz(draw) -> bytes:
    members = _valid() if draw(st.booleans()) else {}
    if not members or draw(st.integers(0, 2)) == 0:
        if draw(st.integers(0, 7)):
            members["x"] = draw(IMAGES)
        if draw(st.integers(0, 7)):
            members["y"] = draw(LABELS)
    if draw(st.integers(0, 3)) == 0:
        members["class_names"] = draw(LABELS)
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, array in members.items():
            raw = draw(claimed_shape(array)) if array.dtype != object and draw(st.integers(0, 9)) == 0 else npy_bytes(array)
            archive.writestr(_member(name + ".npy", compression), raw)
    raw = buffer.getvalue()
    return draw(damaged(raw)) if draw(st.integers(0, 3)) == 0 else raw


def test_finetune_npz_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tally = Tally.named("fine-tune data .npz")

    @given(labelled_npz(), st.sampled_from([(8, 8, 1), (16, 16, 3)]))
    @examples(200)
    def case(raw, image_shape):
        path = tmp_path / "data.npz"
        path.write_bytes(raw)
        tally.run(lambda: read_labelled(path, image_shape), f"{len(raw)} bytes {raw[:120]!r} at {image_shape}", sandbox=tmp_path)
        assert not (tmp_path / MARKER).exists(), "a pickle was loaded"

    case()
    tally.check()

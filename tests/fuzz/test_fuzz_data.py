"""Fuzzed calibration data files: .npy and .npz of every dtype and shape, object arrays holding pickles (whose
unpickling would write a file: the sandbox check sees it), headers that claim huge shapes, damaged bytes and
truncated zip members; and image folders of damaged PNG, JPEG and BMP files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from edgezoo.calibration import CalibrationSettings, load_calibration
from tests.fuzz.harness import Tally, examples
from tests.fuzz.mutations import damaged

MARKER = "UNPICKLED"  # written into the case's folder if any loader ever unpickles a Payload


class Payload:
    """Unpickling it creates a marker file (in the current folder, the case's sandbox)."""

    def __reduce__(self):
        return (Path.touch, (Path(MARKER),))


DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float16,
          np.float32, np.float64, np.longdouble, np.complex64, np.complex128, "U3", "S3", "M8[s]", "m8[ms]",
          [("a", "<f4"), ("b", "<i2")], ">f4", ">i8"]
SHAPES = st.one_of(
    st.integers(0, 6).map(lambda n: (n, 8, 8, 1)),
    st.sampled_from([(3, 8, 8), (3, 8, 8, 3), (8, 8, 1), (2, 1, 8, 8, 1), (), (0,), (4, 64)]),
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=9),
)


@st.composite
def arrays(draw):
    if draw(st.integers(0, 9)) == 0:  # an object array, with a pickle bomb in it
        return np.array([Payload(), 1, "x"], dtype=object)
    dtype = np.dtype(draw(st.sampled_from(DTYPES) | st.just(np.float32)))  # half of the arrays the model's dtype
    shape = draw(SHAPES | st.integers(1, 6).map(lambda n: (n, 8, 8, 1)))  # and half its shape
    if dtype.kind == "f" and np.prod(shape) <= 512:
        array = draw(hnp.arrays(dtype, shape, elements=st.floats(-6e4, 6e4, width=min(64, dtype.itemsize * 8))))
        if array.size and draw(st.integers(0, 5)) == 0:
            array.flat[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return array
    return np.zeros(shape, dtype)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@st.composite
def claimed_shape(draw, array):
    """The array's bytes under a header that claims another (often enormous) shape."""
    shape = draw(st.sampled_from([(10**12, 8, 8, 1), (1 << 31, 8, 8, 1), (5, 8, 8, 1), (0, 8, 8, 1), (-1, 8), (1 << 62,)]))
    header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + array.tobytes()


def _member(name: str, compression: int) -> zipfile.ZipInfo:
    """A zip member with a fixed time stamp: a strategy must build the same bytes from the same draws (writestr with a
    name stamps the current time, and Hypothesis then sees the data generation change between runs)."""
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = compression
    return info


@st.composite
def npz_bytes(draw):
    names = draw(st.lists(st.sampled_from(["image", "arr_0", "arr_1", "x", "a/b", "", "../up", "é"]) | st.text(max_size=6),
                          min_size=0, max_size=3, unique=True))
    members = {}
    for name in names:
        array = draw(arrays())
        members[name] = draw(claimed_shape(array)) if draw(st.integers(0, 5)) == 0 else npy_bytes(array)
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(_member(name + ".npy", compression), data)
            if draw(st.integers(0, 4)) == 0:  # a member truncated inside a consistent archive
                archive.writestr(_member(name + "_cut.npy", compression), data[: draw(st.integers(0, max(0, len(data) - 1)))])
    return buffer.getvalue()


@st.composite
def data_files(draw):
    if draw(st.booleans()):
        array = draw(arrays())
        raw = draw(claimed_shape(array)) if draw(st.integers(0, 4)) == 0 else npy_bytes(array)
        suffix = ".npy"
    else:
        raw, suffix = draw(npz_bytes()), ".npz"
    if draw(st.integers(0, 2)) == 0:
        raw = draw(damaged(raw))
    return suffix, raw


def test_numpy_calibration_files(tmp_path, monkeypatch, digits):
    monkeypatch.chdir(tmp_path)
    tally = Tally.named("calibration .npy/.npz")

    @given(data_files())
    @examples(300)
    def case(file):
        suffix, raw = file
        path = tmp_path / f"data{suffix}"
        path.write_bytes(raw)
        tally.run(lambda: load_calibration(path, digits, CalibrationSettings()), f"{suffix} {len(raw)} bytes {raw[:120]!r}",
                  sandbox=tmp_path, timeout=30)
        assert not (tmp_path / MARKER).exists(), "a pickle was loaded"

    case()
    tally.check()


def _image(kind: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((np.arange(64, dtype=np.uint8).reshape(8, 8) * 3)).save(buffer, format=kind)
    return buffer.getvalue()


IMAGES = {".png": _image("PNG"), ".jpg": _image("JPEG"), ".bmp": _image("BMP")}


def test_image_calibration_folders(tmp_path, monkeypatch, digits):
    monkeypatch.chdir(tmp_path)
    tally = Tally.named("calibration image folders")
    files = st.lists(st.tuples(st.sampled_from(sorted(IMAGES))).flatmap(
        lambda kind: st.tuples(st.just(kind[0]), damaged(IMAGES[kind[0]]) | st.just(IMAGES[kind[0]]) | st.binary(max_size=64))),
        min_size=1, max_size=4)

    @given(files)
    @examples(150)
    def case(images):
        folder = tmp_path / "images"
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for index, (suffix, raw) in enumerate(images):
            (folder / f"{index}{suffix}").write_bytes(raw)
        tally.run(lambda: load_calibration(folder, digits, CalibrationSettings()), [(s, len(r)) for s, r in images],
                  sandbox=tmp_path, timeout=30)

    case()
    tally.check()

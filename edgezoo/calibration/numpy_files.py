"""`.npy` and `.npz` files read without trusting them: never unpickled, every array's header checked first.

A header states a dtype and a shape; NumPy allocates what they add up to before it reads a byte of data. So
each header is read alone and its claim checked against the bytes the file (or the zip member) really holds
and against the data limit (EDGEZOO_MAX_DATA_BYTES, edgezoo/limits.py), before anything is allocated: a file
of a few bytes that claims a terabyte, or a zip member that would decompress past the limit, is refused.
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from edgezoo import limits
from edgezoo.errors import CalibrationDataError

PICKLE_REFUSAL = ("holds Python objects (an object array, stored as a pickle); edgezoo never unpickles data files, "
                  "because unpickling runs code. Save plain numeric arrays (np.save / np.savez).")


def _check_header(handle, available: int, where: str) -> int:
    """Read one array's header; returns the bytes its data takes. Raises for pickles, lies and oversize."""
    version = np.lib.format.read_magic(handle)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(handle)
    if dtype.hasobject:
        raise CalibrationDataError(f"{where} {PICKLE_REFUSAL}")
    needed = math.prod(shape) * dtype.itemsize
    data_bytes = available - handle.tell()
    if needed > data_bytes:
        raise CalibrationDataError(
            f"{where} is truncated or its header is wrong: shape {shape} of {dtype} needs {needed:,} bytes, the file holds {data_bytes:,}."
        )
    return needed


def _limit_check(total: int, where: str) -> None:
    limit = limits.MAX_DATA_BYTES.value()
    if total > limit:
        raise CalibrationDataError(
            f"{where} holds {total:,} bytes of arrays, more than the data limit of {limit:,} bytes "
            f"({limits.MAX_DATA_BYTES.env}). Give fewer samples, or raise the limit if the file is yours."
        )


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a .npy (named after the file) or .npz (named as saved); CalibrationDataError if unreadable."""
    where = f"calibration file '{path}'"
    try:
        if path.suffix == ".npy":
            with open(path, "rb") as handle:
                _limit_check(_check_header(handle, path.stat().st_size, where), where)
            return {path.stem: np.load(path, allow_pickle=False)}
        with zipfile.ZipFile(path) as archive:
            total = 0
            for info in archive.infolist():
                if info.flag_bits & 0x1:  # zipfile would raise RuntimeError asking for a password
                    raise CalibrationDataError(f"cannot read {where}: its member '{info.filename}' is encrypted. Save the "
                                               "arrays with np.savez, without a password.")
                with archive.open(info) as member:
                    if info.filename.endswith(".npy") and member.read(6) == b"\x93NUMPY":
                        with archive.open(info) as handle:  # from the start again: read_magic wants it
                            total += _check_header(handle, info.file_size, f"{where}, array '{info.filename[:-4]}',")
                    else:
                        total += info.file_size
                _limit_check(total, where)
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in data.files}
    except CalibrationDataError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error,
            NotImplementedError) as exc:
        # NotImplementedError: a zip compression method Python lacks; SyntaxError, TokenError: a header NumPy cannot parse
        raise CalibrationDataError(f"cannot read {where}: {exc}. Check that it is a valid NumPy file.") from exc

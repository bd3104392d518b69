"""Byte-level damage for fuzzing file readers: truncation, bit flips, oversized counts, spliced garbage."""

from __future__ import annotations

import struct

from hypothesis import strategies as st

BIG_COUNTS = [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x40000000, 0x10000, 0, 1 << 24]


@st.composite
def damaged(draw, original: bytes, max_edits: int = 4) -> bytes:
    """`original` with 1..max_edits edits; positions are drawn over the whole file."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, max_edits))):
        if not data:
            break
        kind = draw(st.sampled_from(["truncate", "flip", "flip", "count", "count", "splice", "zero"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "count":  # a length or offset field made huge (or zero), little-endian as flatbuffers and npy store it
            at -= at % 4
            data[at:at + 4] = struct.pack("<I", draw(st.sampled_from(BIG_COUNTS)))
        elif kind == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[at:at + draw(st.integers(1, 64))] = b""
    return bytes(data)

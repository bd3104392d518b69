"""Rewriting a .tflite: unpacked with the flatbuffer object API, edited, packed again.

The schema is the one tflite-micro ships (newer than the converter's, so it knows every field the converter writes).
Weight buffers keep the 16-byte alignment the converter gives them (the generic packer would align them to 4 only).
Used to add the TFLite metadata buffer (formats/tflite/metadata.py) and the SignatureDef of a model converted from a frozen
graph (formats/tflite/frozen.py).
"""

from __future__ import annotations

from typing import Callable

import flatbuffers
import numpy as np

from edgezoo.errors import CorruptModelError

MODEL_IDENTIFIER = b"TFL3"
BUFFER_ALIGNMENT = 16


def repack(flatbuffer: bytes, edit: Callable[[object], None], what: str, extra_bytes: int = 0) -> bytes:
    """The model with `edit(model)` applied to its object-API form (schema.ModelT); `what` says in an error what for."""
    from edgezoo.formats.tflite.flatbuffer import schema as tflite_schema

    try:
        model = tflite_schema().ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    except Exception as exc:  # flatbuffers raises struct and index errors on damaged files
        raise CorruptModelError(f"cannot unpack the .tflite to {what}: {type(exc).__name__}: {exc}") from exc
    if any(buffer.offset for buffer in model.buffers or ()):
        raise CorruptModelError(f"the .tflite keeps its weights outside the flatbuffer (a model over 2 GB); edgezoo cannot {what}.")
    edit(model)
    model.buffers = [AlignedBuffer(buffer.data) for buffer in model.buffers]
    builder = flatbuffers.Builder(len(flatbuffer) + extra_bytes + 4096)
    builder.Finish(model.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    return bytes(builder.Output())


class AlignedBuffer:
    """A Buffer table whose bytes start on a 16-byte boundary (what the converter's `force_align: 16` asks)."""

    def __init__(self, data):
        self.data = None if data is None else np.asarray(data, np.uint8)

    def Pack(self, builder) -> int:  # noqa: N802 (the object API's name)
        data_at = None
        if self.data is not None:  # an empty vector too: readers tell a constant of no elements from an activation by it
            payload = self.data.tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            data_at = builder.EndVector()
        builder.StartObject(3)
        if data_at is not None:
            builder.PrependUOffsetTRelativeSlot(0, data_at, 0)
        return builder.EndObject()

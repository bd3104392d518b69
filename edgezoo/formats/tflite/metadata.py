"""TFLite metadata (schema 1.5.0, file identifier M001), written without tflite-support.

The metadata is its own flatbuffer, built here field by field (the slot numbers are the schema's; DESIGN.md
lists them), stored as one more Buffer of the model and named `TFLITE_METADATA` in `Model.metadata`. Files it
names (labels.txt, edgezoo.json) are appended to the .tflite as a zip archive, as the TFLite Support and
MediaPipe readers expect; interpreters ignore what follows the flatbuffer.

The model is unpacked and repacked by formats/tflite/repack.py (weight buffers keep their 16-byte alignment).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import flatbuffers
import numpy as np
from flatbuffers import number_types
from flatbuffers.table import Table

from edgezoo.errors import CorruptModelError
from edgezoo.formats.metadata import LABELS_FILE

FORMAT = "tflite"
WHERE = "TFLite metadata (TFLITE_METADATA buffer) with associated files zipped at the end"
METADATA_NAME = b"TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
FACTS_FILE = "edgezoo.json"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no build time in the file

# Enum and union values of the metadata schema.
FEATURE_PROPERTIES, IMAGE_PROPERTIES = 1, 2  # ContentProperties
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions
DESCRIPTIONS, TENSOR_AXIS_LABELS = 1, 2  # AssociatedFileType
COLOR_SPACES = {"RGB": 1, "GRAYSCALE": 2}  # ColorSpaceType; anything else (BGR) is UNKNOWN = 0
COLOR_SPACE_NAMES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}
FILE_TYPE_NAMES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS", 3: "TENSOR_VALUE_LABELS",
                   4: "TENSOR_AXIS_SCORE_CALIBRATION", 5: "VOCABULARY", 6: "SCANN_INDEX_FILE"}
# Every field written here is in schema 1.0.0 (members added later: AssociatedFile.version 1.4.1, input and
# output process units 1.1.0, tensor groups 1.2.0, custom metadata 1.5.0, none of them used).
MIN_PARSER_VERSION = "1.0.0"


# --- writing -------------------------------------------------------------------------------------


def write(artifact, facts) -> int:
    """Embed the facts into artifact.path; returns how many bytes the file grew by."""
    from edgezoo.formats.tflite.flatbuffer import read_flatbuffer

    path = artifact.path
    original = path.read_bytes()
    summary = read_flatbuffer(original)  # inputs and outputs in the subgraph's order, by the signature's names
    metadata = build_metadata(facts, [t.name for t in summary.inputs], [t.name for t in summary.outputs])
    files = {FACTS_FILE: json.dumps(_facts_file(facts), sort_keys=True, separators=(",", ":")).encode()}
    if facts.labels:
        files[LABELS_FILE] = facts.labels_text().encode("utf-8")
    packed = append_zip(with_metadata_buffer(original, metadata), files)
    path.write_bytes(packed)
    return len(packed) - len(original)


def _facts_file(facts) -> dict:
    """What the schema has no field for: where the model came from, how it was converted, its preprocessing."""
    data = facts.to_json()
    for key in ("name", "description", "version", "author", "license", "labels", "images"):
        data.pop(key)
    return data


class _Fields:
    """A flatbuffer table under construction: slot -> offset, or slot -> (byte, default 0)."""

    def __init__(self, builder: flatbuffers.Builder, slots: int):
        self.builder, self.slots, self.offsets, self.bytes = builder, slots, {}, {}

    def offset(self, slot: int, value: int | None) -> "_Fields":
        if value is not None:
            self.offsets[slot] = value
        return self

    def byte(self, slot: int, value: int) -> "_Fields":
        self.bytes[slot] = value
        return self

    def end(self) -> int:
        b = self.builder
        b.StartObject(self.slots)
        for slot, value in self.offsets.items():
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        for slot, value in self.bytes.items():
            b.PrependUint8Slot(slot, value, 0)
        return b.EndObject()


def _string(builder, text: str | None) -> int | None:
    return builder.CreateString(text) if text else None


def _floats(builder, values) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(float(value))
    return builder.EndVector()


def _tables(builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _associated_file(builder, name: str, description: str, kind: int) -> int:
    name_at, description_at = _string(builder, name), _string(builder, description)
    return _Fields(builder, 5).offset(0, name_at).offset(1, description_at).byte(2, kind).end()


def _input_metadata(builder, name: str, image) -> int:
    """TensorMetadata of an input: an image with its normalisation and range, else a plain feature tensor."""
    name_at = _string(builder, name)
    if image is None:
        description_at = _string(builder, "model input")
        properties = _Fields(builder, 0).end()  # FeatureProperties has no fields
        content = _Fields(builder, 3).byte(0, FEATURE_PROPERTIES).offset(1, properties).end()
        return _Fields(builder, 7).offset(0, name_at).offset(1, description_at).offset(3, content).end()
    description_at = _string(builder, f"image, {image.color_space}; preprocessing: {image.description}")
    properties = _Fields(builder, 2)
    if image.color_space in COLOR_SPACES:
        properties.byte(0, COLOR_SPACES[image.color_space])
    properties_at = properties.end()
    content = _Fields(builder, 3).byte(0, IMAGE_PROPERTIES).offset(1, properties_at).end()
    mean, std = _floats(builder, image.mean), _floats(builder, image.std)
    normalization = _Fields(builder, 2).offset(0, mean).offset(1, std).end()
    unit = _Fields(builder, 2).byte(0, NORMALIZATION_OPTIONS).offset(1, normalization).end()
    units = _tables(builder, [unit])
    high, low = _floats(builder, image.max), _floats(builder, image.min)
    stats = _Fields(builder, 2).offset(0, high).offset(1, low).end()
    return (_Fields(builder, 7).offset(0, name_at).offset(1, description_at).offset(3, content).offset(4, units)
            .offset(5, stats).end())


def _output_metadata(builder, name: str, facts) -> int:
    labelled = facts.labels and name == facts.labelled_output
    name_at = _string(builder, name)
    description_at = _string(builder, f"scores of {len(facts.labels)} classes, in the order of {LABELS_FILE}" if labelled else "model output")
    properties = _Fields(builder, 0).end()
    content = _Fields(builder, 3).byte(0, FEATURE_PROPERTIES).offset(1, properties).end()
    files = None
    if labelled:
        files = _tables(builder, [_associated_file(builder, LABELS_FILE, "class names, one a line", TENSOR_AXIS_LABELS)])
    return _Fields(builder, 7).offset(0, name_at).offset(1, description_at).offset(3, content).offset(6, files).end()


def build_metadata(facts, input_names: list[str], output_names: list[str]) -> bytes:
    """The ModelMetadata flatbuffer; tensors in the subgraph's input and output order, as the schema requires."""
    builder = flatbuffers.Builder(1024)
    inputs = _tables(builder, [_input_metadata(builder, name, facts.image(name)) for name in input_names])
    outputs = _tables(builder, [_output_metadata(builder, name, facts) for name in output_names])
    subgraph_name = _string(builder, facts.name)
    subgraph = _Fields(builder, 10).offset(0, subgraph_name).offset(2, inputs).offset(3, outputs).end()
    subgraphs = _tables(builder, [subgraph])
    facts_file = _associated_file(builder, FACTS_FILE, "source, sha256, quantisation and preprocessing, as edgezoo recorded them", DESCRIPTIONS)
    model_files = _tables(builder, [facts_file])
    strings = {slot: _string(builder, text) for slot, text in
               ((0, facts.name), (1, facts.description), (2, facts.version), (4, facts.author), (5, facts.license), (7, MIN_PARSER_VERSION))}
    root = _Fields(builder, 8).offset(3, subgraphs).offset(6, model_files)
    for slot, offset in strings.items():
        root.offset(slot, offset)
    builder.Finish(root.end(), file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


def with_metadata_buffer(flatbuffer: bytes, metadata: bytes) -> bytes:
    """The model repacked with `metadata` as its TFLITE_METADATA buffer (replacing one that is there)."""
    from edgezoo.formats.tflite.flatbuffer import schema as tflite_schema
    from edgezoo.formats.tflite.repack import repack

    schema = tflite_schema()
    data = np.frombuffer(metadata, np.uint8)

    def add(model) -> None:
        entries = [entry for entry in (model.metadata or []) if entry.name == METADATA_NAME]
        if entries:
            model.buffers[entries[0].buffer].data = data
        else:
            model.buffers.append(schema.BufferT(data=data))
            entry = schema.MetadataT()
            entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
            model.metadata = [*(model.metadata or []), entry]

    return repack(flatbuffer, add, "add its metadata", extra_bytes=len(metadata))


def append_zip(flatbuffer: bytes, files: dict[str, bytes]) -> bytes:
    """The flatbuffer followed by its associated files as a stored (uncompressed) zip, with offsets counted from the
    file's start as tflite-support wrote them, and fixed dates and modes: the same bytes every time."""
    stream = io.BytesIO(flatbuffer)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return stream.getvalue()


# --- reading -------------------------------------------------------------------------------------


class _Reader:
    """Fields of one table of a flatbuffer, by slot number."""

    def __init__(self, data: bytes, position: int):
        self.table = Table(bytearray(data) if not isinstance(data, bytearray) else data, position)

    def _at(self, slot: int) -> int:
        return self.table.Offset(4 + 2 * slot)

    def string(self, slot: int) -> str | None:
        at = self._at(slot)
        return self.table.String(at + self.table.Pos).decode("utf-8", "replace") if at else None

    def byte(self, slot: int) -> int:
        at = self._at(slot)
        return self.table.Get(number_types.Uint8Flags, at + self.table.Pos) if at else 0

    def child(self, slot: int) -> "_Reader | None":
        at = self._at(slot)
        return self._with(self.table.Indirect(at + self.table.Pos)) if at else None

    def children(self, slot: int) -> list["_Reader"]:
        at = self._at(slot)
        if not at:
            return []
        start = self.table.Vector(at)
        return [self._with(self.table.Indirect(start + 4 * i)) for i in range(self.table.VectorLen(at))]

    def floats(self, slot: int) -> list[float] | None:
        at = self._at(slot)
        if not at:
            return None
        start = self.table.Vector(at)
        return [float(self.table.Get(number_types.Float32Flags, start + 4 * i)) for i in range(self.table.VectorLen(at))]

    def _with(self, position: int) -> "_Reader":
        reader = _Reader.__new__(_Reader)
        reader.table = Table(self.table.Bytes, position)
        return reader


def metadata_buffer(data: bytes) -> bytes | None:
    """The TFLITE_METADATA buffer of a .tflite, or None."""
    from edgezoo.formats.tflite.flatbuffer import open_model, readable

    with readable("cannot read the .tflite's metadata entries"):
        model = open_model(data)[0]
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == METADATA_NAME:
                buffer = model.Buffers(entry.Buffer())
                if buffer.Offset():
                    return bytes(data[buffer.Offset() : buffer.Offset() + buffer.Size()])
                return buffer.DataAsNumpy().tobytes() if buffer.DataLength() else None
    return None


def _files(reader: _Reader | None, slot: int) -> list[dict]:
    if reader is None:
        return []
    return [{"name": f.string(0), "description": f.string(1), "type": FILE_TYPE_NAMES.get(f.byte(2), str(f.byte(2)))}
            for f in reader.children(slot)]


def _tensor(reader: _Reader) -> dict:
    content = reader.child(3)
    tensor = {"name": reader.string(0), "description": reader.string(1), "content": None, "associated_files": _files(reader, 6)}
    if content is not None:
        kind = content.byte(0)
        tensor["content"] = {FEATURE_PROPERTIES: "feature", IMAGE_PROPERTIES: "image"}.get(kind, f"content type {kind}")
        properties = content.child(1)
        if kind == IMAGE_PROPERTIES and properties is not None:
            tensor["color_space"] = COLOR_SPACE_NAMES.get(properties.byte(0), str(properties.byte(0)))
    for unit in reader.children(4):
        options = unit.child(1)
        if unit.byte(0) == NORMALIZATION_OPTIONS and options is not None:
            tensor["normalization"] = {"mean": options.floats(0), "std": options.floats(1)}
    stats = reader.child(5)
    if stats is not None:
        tensor["range"] = {"min": stats.floats(1), "max": stats.floats(0)}
    return tensor


def parse_metadata(buffer: bytes) -> dict:
    """The ModelMetadata flatbuffer as a dict (the fields edgezoo writes, and associated files of any model)."""
    if buffer[4:8] != METADATA_IDENTIFIER:
        raise CorruptModelError(f"the TFLITE_METADATA buffer is not a metadata flatbuffer (identifier {bytes(buffer[4:8])!r}, not M001).")
    try:
        root = _Reader(buffer, flatbuffers.encode.Get(flatbuffers.packer.uoffset, bytearray(buffer), 0))
        subgraphs = root.children(3)
        main = subgraphs[0] if subgraphs else None
        return {
            "name": root.string(0),
            "description": root.string(1),
            "version": root.string(2),
            "author": root.string(4),
            "license": root.string(5),
            "min_parser_version": root.string(7),
            "associated_files": _files(root, 6),
            "inputs": [_tensor(t) for t in main.children(2)] if main else [],
            "outputs": [_tensor(t) for t in main.children(3)] if main else [],
        }
    except CorruptModelError:
        raise
    except Exception as exc:  # a damaged metadata buffer
        raise CorruptModelError(f"the .tflite's metadata cannot be parsed: {type(exc).__name__}: {exc}") from exc


def associated_files(path: Path) -> dict[str, bytes]:
    """The files zipped at the end of a .tflite (nothing when there is no archive)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}


def read(path: Path) -> dict | None:
    """The metadata of a .tflite with its labels and edgezoo's facts file; None when it has no metadata."""
    buffer = metadata_buffer(Path(path).read_bytes())
    if buffer is None:
        return None
    metadata = parse_metadata(buffer)
    files = associated_files(Path(path))
    labels = None
    for tensor in metadata["outputs"]:
        for entry in tensor["associated_files"]:
            if entry["type"] == "TENSOR_AXIS_LABELS" and entry["name"] in files:
                labels = files[entry["name"]].decode("utf-8", "replace").splitlines()
    metadata["labels"] = labels
    metadata["edgezoo"] = json.loads(files[FACTS_FILE]) if FACTS_FILE in files else None
    metadata["files_in_zip"] = sorted(files)
    return metadata

"""Never run a stranger's code by accident: checks made BEFORE a model file is loaded or run.

- Keras configs (.keras, .h5): Lambda layers (Python bytecode) and custom objects that Keras does not
  ship are refused unless the user trusts the model (--trust-model); Keras 3 also loads in safe mode.
- Archives: every member must land inside the destination: no absolute paths, no '..', no links or
  devices.
- SavedModels: the graph (every node and every library function) is scanned for ops that touch the
  file system or run Python, and refused with their names. The checkpoint ops of the SavedModel's own
  saver (the functions its saver_def names) are allowed there, because loading restores variables with them.
"""

from __future__ import annotations

import inspect
import posixpath
import tarfile
import zlib
from functools import lru_cache
from pathlib import Path

from edgezoo import limits
from edgezoo.errors import CorruptModelError, UnsafeModelError

TRUST_HINT = "Pass --trust-model (trust_model=True) only if you trust where the file came from."

# Ops that run Python code in the process that runs the graph.
PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})

# Ops that read, write, list or map files, or write logs and caches to disk.
FILE_SYSTEM_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "MatchingFilesDataset", "ImmutableConst",
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "LMDBReader", "IdentityReader",
    "IdentityReaderV2", "ReaderRestoreState", "ReaderRestoreStateV2", "ReaderSerializeState",
    "ReaderSerializeStateV2",
    "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "SqlDataset",
    "ExperimentalSqlDataset", "LMDBDataset", "ExperimentalLMDBDataset", "SnapshotDataset", "SnapshotDatasetV2",
    "SnapshotDatasetReader", "SnapshotChunkDataset", "SaveDataset", "SaveDatasetV2", "LoadDataset",
    "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "CacheDataset", "CacheDatasetV2",
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "LoadAndRemapMatrix", "GenerateVocabRemapping",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteScalarSummary",
    "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary",
    "WriteRawProtoSummary", "ImportEvent", "FlushSummaryWriter",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2",
})

# The key under which risky_ops lists op types that no TensorFlow op registers: a custom op library's.
CUSTOM_OP = "<custom op>"

# Checkpoint ops that a SavedModel's own saver functions legitimately hold.
SAVER_OPS = frozenset({"Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints"})


# --- SavedModel graphs ----------------------------------------------------------------------------


def check_saved_model(saved_model_dir: Path, trust_model: bool) -> None:
    """Refuse a SavedModel whose graph holds file-system or Python ops, before TensorFlow loads it."""
    if trust_model:
        return
    findings = risky_ops(saved_model_dir)
    custom = findings.pop(CUSTOM_OP, None)
    if custom:
        raise UnsafeModelError(
            f"the SavedModel at {saved_model_dir} uses ops that TensorFlow does not define ({', '.join(sorted(custom)[:5])}): they come "
            f"from a custom op library, whose native code runs in this process once loaded. edgezoo never loads op libraries; "
            f"{TRUST_HINT} (and load the library yourself, with tf.load_op_library, before calling edgezoo's API)."
        )
    if findings:
        listed = "; ".join(f"{op} (in {', '.join(sorted(places)[:3])})" for op, places in sorted(findings.items()))
        raise UnsafeModelError(
            f"the SavedModel at {saved_model_dir} holds ops that touch the file system or run Python: {listed}. "
            f"Running it could read or write files or execute code. {TRUST_HINT}"
        )


def risky_ops(saved_model_dir: Path) -> dict[str, set[str]]:
    """{op name: the graph functions (or 'graph') that hold it} for every risky op outside the saver; under CUSTOM_OP,
    the op types TensorFlow does not define (a custom op library's)."""
    from edgezoo import _tf

    _tf.tf()
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    except Exception as exc:  # protobuf's DecodeError, or an unreadable file
        raise CorruptModelError(f"cannot read {saved_model_dir}/saved_model.pb: {exc}. Is the SavedModel complete?") from exc
    findings: dict[str, set[str]] = {}
    for meta_graph in proto.meta_graphs:
        graph = meta_graph.graph_def
        functions = {f.signature.name: f for f in graph.library.function}
        saver_nodes = {name.split(":")[0] for name in (meta_graph.saver_def.save_tensor_name, meta_graph.saver_def.restore_op_name) if name}
        saver_functions = _reachable(
            [ref for node in graph.node if node.name in saver_nodes for ref in _called(node, functions)], functions
        )
        for node in graph.node:
            _note(findings, node.op, "graph", allow_saver=node.name in saver_nodes)
        for name, function in functions.items():
            for node in function.node_def:
                _note(findings, node.op, name, allow_saver=name in saver_functions)
        for node in [*graph.node, *(n for f in functions.values() for n in f.node_def)]:
            if node.op not in functions and op_def_registry.get(node.op) is None:
                findings.setdefault(CUSTOM_OP, set()).add(node.op)
    return findings


def _note(findings: dict[str, set[str]], op: str, where: str, allow_saver: bool) -> None:
    if op in PYTHON_OPS or (op in FILE_SYSTEM_OPS and not (allow_saver and op in SAVER_OPS)):
        findings.setdefault(op, set()).add(where)


def _called(node, functions: dict) -> list[str]:
    """Library functions a node calls: through func attributes, or by using a function's name as its op."""
    names = [node.op] if node.op in functions else []
    for attr in node.attr.values():
        if attr.HasField("func"):
            names.append(attr.func.name)
        names.extend(f.name for f in attr.list.func)
    return names


def _reachable(roots: list[str], functions: dict) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name].node_def:
            stack.extend(_called(node, functions))
    return seen


# --- Keras configs --------------------------------------------------------------------------------


def check_keras_config(config: dict, where: Path | str, trust_model: bool) -> None:
    """Refuse Lambda layers and custom objects in a Keras model config, before Keras deserialises it.

    Keras 3 configs name each object's module (built-ins live in `keras.*`); tf-keras (.h5) configs
    name only the class, checked against the classes tf-keras ships.
    """
    if trust_model:
        return
    lambdas, custom, python_code = [], [], False
    for obj in _keras_objects(config):
        class_name = obj["class_name"]
        label = _object_label(obj)
        if class_name == "Lambda":
            lambdas.append(label)
        elif class_name == "__lambda__":  # Keras 3's encoding of a Python lambda's bytecode, wherever it sits
            python_code = True
        elif class_name.startswith("__"):
            continue  # Keras' own encodings of tuples, tensors, numpy arrays
        elif _is_custom(obj):
            custom.append(label)
    if python_code and not lambdas:
        lambdas.append("a Python lambda in a layer's arguments")
    if lambdas:
        raise UnsafeModelError(
            f"{where} contains Lambda layers ({', '.join(sorted(set(lambdas)))}), whose Python code would run "
            f"when the model loads. {TRUST_HINT}"
        )
    if custom:
        raise UnsafeModelError(
            f"{where} uses custom objects that Keras does not ship ({', '.join(sorted(set(custom)))}); loading them "
            f"would import and run code from outside Keras. {TRUST_HINT}"
        )


def _keras_objects(value):
    if isinstance(value, dict):
        if isinstance(value.get("class_name"), str):
            yield value
        for item in value.values():
            yield from _keras_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keras_objects(item)


def _object_label(obj: dict) -> str:
    config = obj.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    registered = obj.get("registered_name")
    kind = registered if isinstance(registered, str) and ">" in registered else obj["class_name"]
    module = obj.get("module")
    if isinstance(module, str) and not (module == "keras" or module.startswith("keras.")) and kind == obj["class_name"]:
        kind = f"{module}.{config if obj['class_name'] == 'function' and isinstance(config, str) else kind}"  # where it would import from
    return f"{kind} '{name}'" if name else kind


def _is_custom(obj: dict) -> bool:
    if "module" in obj:  # Keras 3
        module = obj["module"]
        registered = obj.get("registered_name")
        if isinstance(registered, str) and ">" in registered:
            return True
        return module is not None and not (module == "keras" or module.startswith("keras."))
    return obj["class_name"] not in _tf_keras_classes()


@lru_cache(maxsize=1)
def _tf_keras_classes() -> frozenset[str]:
    from edgezoo import _tf

    keras = _tf.tf_keras()
    names = {"Functional", "Sequential", "Model", "TFOpLambda", "SlicingOpLambda", "Policy", "DTypePolicy"}
    for module in (keras.layers, keras.initializers, keras.regularizers, keras.constraints, keras.mixed_precision,
                   keras.layers.experimental.preprocessing):
        names.update(name for name in dir(module) if inspect.isclass(getattr(module, name, None)))
    return frozenset(names)


# --- Files a model names ------------------------------------------------------------------------


def contained_file(folder: Path, name: object, what: str) -> Path:
    """A file that a model's own metadata names (TF.js weight shards): a plain relative path that stays inside the
    model's folder once links are resolved. Anything else is refused: reading it could copy any file into the output."""
    text = name if isinstance(name, str) else None
    parts = text.replace("\\", "/").split("/") if text else []
    if not text or text.startswith(("/", "\\", "~")) or "\x00" in text or ".." in parts or (len(text) > 1 and text[1] == ":"):
        raise UnsafeModelError(f"{what} is {name!r}, not a plain relative path inside {folder}; refusing to read it.")
    path = folder / text
    if not path.resolve().is_relative_to(folder.resolve()):
        raise UnsafeModelError(f"{what} is '{text}', which leads outside {folder} (through a link); refusing to read it.")
    return path


def check_json_size(path: Path) -> None:
    """A model's JSON file (TF.js model.json, a Keras config) is read whole: refuse one past the stated limit first."""
    limit = limits.MAX_JSON_BYTES.value()
    size = path.stat().st_size
    if size > limit:
        raise CorruptModelError(f"{path} is {size:,} bytes, more than the {limit:,}-byte limit for a model's JSON file "
                                f"({limits.MAX_JSON_BYTES.env}); refusing to read it.")


def check_zip_member_size(info, archive: Path) -> None:
    """A JSON file inside a zip (a .keras archive's config.json) is decompressed whole: refuse one past the limit first."""
    limit = limits.MAX_JSON_BYTES.value()
    if info.file_size > limit:
        raise CorruptModelError(f"{archive} holds {info.filename} of {info.file_size:,} bytes decompressed, more than the "
                                f"{limit:,}-byte limit for a model's JSON file ({limits.MAX_JSON_BYTES.env}); refusing to read it.")


# --- Archives -------------------------------------------------------------------------------------


def safe_extract_tar(archive: Path, dest: Path, what: str = "the archive") -> None:
    """Extract a tar (any compression) into dest, refusing members that would land outside it and archives past the
    size and count limits (edgezoo/limits.py). Every header is checked before its data is read, so a decompression
    bomb is refused after at most the limit's worth of decompression, and nothing is written unless all pass."""
    max_bytes, max_members = limits.MAX_ARCHIVE_BYTES.value(), limits.MAX_ARCHIVE_MEMBERS.value()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members, total = [], 0
            for member in tar:  # reading the next header skips (decompresses) the data before it: check first
                _check_member(member, what)
                total += member.size
                if total > max_bytes:
                    raise UnsafeModelError(
                        f"{what} would extract to more than {max_bytes:,} bytes (the limit, {limits.MAX_ARCHIVE_BYTES.env}); "
                        f"'{member.name}' alone is {member.size:,} bytes. Refusing it as a possible decompression bomb "
                        "(nothing was written). Raise the limit if you trust the archive."
                    )
                members.append(member)
                if len(members) > max_members:
                    raise UnsafeModelError(
                        f"{what} holds more than {max_members:,} files (the limit, {limits.MAX_ARCHIVE_MEMBERS.env}); refusing it "
                        "(nothing was written)."
                    )
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise CorruptModelError(f"cannot extract {what}: {exc}. The download may be damaged or not a .tar.gz.") from exc


def _check_member(member: tarfile.TarInfo, what: str) -> None:
    name = member.name
    parts = posixpath.normpath(name.replace("\\", "/")).split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        problem = "an absolute path"
    elif ".." in parts:
        problem = "a '..' path that leads outside the folder"
    elif member.issym() or member.islnk():
        problem = f"a link (to '{member.linkname}')"
    elif not (member.isfile() or member.isdir()):
        problem = "a device, pipe or other special file"
    elif member.issparse():
        problem = "a sparse file (its real size is not its stored size)"
    else:
        return
    raise UnsafeModelError(f"{what} holds '{name}', {problem}; refusing to extract it (nothing was written).")

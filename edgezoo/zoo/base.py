"""What the zoo hands to every other step: a `LoadedModel` around a canonical SavedModel."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgezoo.errors import CorruptModelError, UsageError

SIGNATURE_KEY = "serving_default"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]  # with the batch dimension first; None where dynamic
    dtype: str  # numpy dtype name, e.g. "float32"

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Preprocessing:
    """How raw inputs (pixels) become model inputs: optional channel flip, then x*scale+offset, then (x-mean)/std."""

    scale: float = 1.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str = "RGB"  # RGB, BGR or grayscale
    description: str = "none"
    pixel_max: float = 255.0  # the raw value of a full-white pixel that `scale` expects (8-bit images are rescaled to it)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        x = raw.astype(np.float32)
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        x = x * np.float32(self.scale) + np.float32(self.offset)
        if self.mean is not None:
            x = x - np.asarray(self.mean, np.float32)
        if self.std is not None:
            x = x / np.asarray(self.std, np.float32)
        return x

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Preprocessing":
        data = dict(data)
        for key in ("mean", "std"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass(frozen=True)
class ModelData:
    """Example inputs that come with a model (bundled models): calibration and labelled held-out inputs."""

    calibration: dict[str, np.ndarray]
    heldout: dict[str, np.ndarray]
    heldout_labels: np.ndarray | None = None
    heldout_boxes: tuple[np.ndarray, np.ndarray] | None = None  # detectors: ([N, M, 4] normalised boxes, [N, M] classes, 0 empty)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    source: str
    saved_model_dir: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sha256: str
    version: str | None = None
    task: str | None = None  # "classification" enables top-k metrics
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    labels: tuple[str, ...] | None = None
    license: str | None = None
    signature_key: str = SIGNATURE_KEY
    description: str | None = None  # one sentence for people (written into the artifacts' metadata)
    author: str | None = None
    # Loads the example data lazily; None when the source ships none.
    load_data: Callable[[], ModelData] | None = field(default=None, compare=False, repr=False)
    # What the source knows beyond the above: parameters, the files it fetched and how they were verified.
    details: dict = field(default_factory=dict, compare=False, repr=False)
    # TFLite targets: the serving signature traced for fixed input shapes (zoo/signature.FixedSignature), which the
    # TFLite converter reads instead of a re-saved SavedModel; None: the converters read saved_model_dir's signature.
    fixed_signature: object = field(default=None, compare=False, repr=False)
    # A Keras 3 recurrent model exported again at batch 1 when loaded (zoo/local.py), for the TFLite converter, which cannot
    # lower the dynamic-batch export's recurrent loop; None for every other model.
    batch_one_saved_model: Path | None = field(default=None, compare=False, repr=False)

    @property
    def is_classifier(self) -> bool:
        """Classifiers get top-k metrics and a distillation loss over class probabilities."""
        return self.task == "classification"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "version": self.version,
            "sha256": self.sha256,
            "task": self.task,
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
            "preprocessing": self.preprocessing.to_json(),
            "license": self.license,
            "description": self.description,
            "author": self.author,
            **({"details": self.details} if self.details else {}),
        }


GRAYSCALE = "grayscale"


def described_channels(preprocessing: Preprocessing, inputs: tuple[TensorSpec, ...]) -> Preprocessing:
    """The preprocessing as it reads for these inputs: a model whose image inputs ([N, H, W, C]) all have one channel
    takes grayscale pixels, whatever the source's default said (Preprocessing() says RGB, which no 1-channel input is;
    a Keras .h5 carries no colour space at all). Anything else is returned as it is."""
    channels = {spec.shape[-1] for spec in inputs if len(spec.shape) == 4}
    if channels != {1} or preprocessing.channel_order == GRAYSCALE:
        return preprocessing
    description = "none (one grayscale channel, pixels as they are)" if preprocessing.description == "none" else preprocessing.description
    return dataclasses.replace(preprocessing, channel_order=GRAYSCALE, description=description)


def looks_like_classifier(outputs: tuple[TensorSpec, ...], saved_model_dir: Path | None = None, named_classifier: bool = False) -> bool:
    """One output of shape (batch, classes) that is a classifier's: the source says so (`named_classifier`, e.g. a hub
    handle of a classification module), or the graph ends in a Softmax. An embedding or a multi-label head has the
    same shape, and top-k agreement on them would judge nothing real, so the shape alone does not decide."""
    if not (len(outputs) == 1 and len(outputs[0].shape) == 2 and (outputs[0].shape[-1] or 0) > 1):
        return False
    return named_classifier or (saved_model_dir is not None and "Softmax" in graph_op_names(saved_model_dir))


def saved_model_proto(saved_model_dir: Path):
    """The SavedModel protocol buffer of saved_model.pb (graphs, function library, signatures): nothing is loaded or traced."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    except (OSError, ValueError) as exc:  # protobuf's DecodeError is a ValueError
        raise CorruptModelError(f"cannot read {saved_model_dir}/saved_model.pb: {exc}") from exc
    return proto


def graph_op_names(saved_model_dir: Path) -> frozenset[str]:
    """Every op type in a SavedModel's graph and function library, read from saved_model.pb (nothing is traced)."""
    names = set()
    for graph in saved_model_proto(saved_model_dir).meta_graphs:
        names.update(node.op for node in graph.graph_def.node)
        for function in graph.graph_def.library.function:
            names.update(node.op for node in function.node_def)
    return frozenset(names)


def sha256_of_path(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_signature(saved_model_dir: Path, signature_key: str = SIGNATURE_KEY) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Input and output specs of a SavedModel's serving signature, in sorted name order.

    Read from the SignatureDef in saved_model.pb, with the variables' checkpoint index opened to see that it is there
    and readable: loading the whole object graph for this (tf.saved_model.load) takes 8-10 s for a Keras MobileNetV2,
    on the critical path of every run. Signatures the file cannot describe alone (an input of unknown rank) are read by
    loading the SavedModel."""
    from edgezoo import _tf

    tf = _tf.tf()
    fast = _signature_from_proto(tf, Path(saved_model_dir), signature_key)
    if fast is not None:
        return fast
    try:
        with _tf.quiet_native_output():
            loaded = tf.saved_model.load(str(saved_model_dir))
    except Exception as exc:  # TensorFlow raises many kinds for a damaged file
        raise CorruptModelError(
            f"cannot read the SavedModel at {saved_model_dir}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "Check that the folder is a complete SavedModel (saved_model.pb and variables/)."
        ) from exc
    if signature_key not in loaded.signatures:
        raise CorruptModelError(
            f"the SavedModel at {saved_model_dir} has no '{signature_key}' signature "
            f"(it has: {', '.join(loaded.signatures) or 'none'}). Re-export it with a serving signature."
        )
    function = loaded.signatures[signature_key]
    input_specs = function.structured_input_signature[1]
    inputs = tuple(
        TensorSpec(name, tuple(spec.shape.as_list()), spec.dtype.as_numpy_dtype().dtype.name)
        for name, spec in sorted(input_specs.items())
    )
    outputs = tuple(
        TensorSpec(name, tuple(spec.shape.as_list()), spec.dtype.as_numpy_dtype().dtype.name)
        for name, spec in sorted(function.structured_outputs.items())
    )
    return inputs, outputs


def _signature_from_proto(tf, saved_model_dir: Path, signature_key: str):
    """(inputs, outputs) from the SignatureDef, or None where only loading the SavedModel can tell (or tell what is wrong)."""
    try:
        proto = saved_model_proto(saved_model_dir)
        signatures = proto.meta_graphs[0].signature_def if len(proto.meta_graphs) == 1 else None
        if (saved_model_dir / "variables").is_dir() and not _variables_complete(tf, saved_model_dir / "variables"):
            return None
    except Exception:  # the SavedModel load below says what is wrong, as it always did
        return None
    if signatures is None or signature_key not in signatures:
        return None

    def specs(infos) -> tuple[TensorSpec, ...] | None:
        found = []
        for name, info in sorted(infos.items()):
            if info.tensor_shape.unknown_rank or not info.name:
                return None
            dtype = tf.dtypes.as_dtype(info.dtype).as_numpy_dtype().dtype.name
            found.append(TensorSpec(name, tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim), dtype))
        return tuple(found)

    signature = signatures[signature_key]
    inputs, outputs = specs(signature.inputs), specs(signature.outputs)
    return (inputs, outputs) if inputs is not None and outputs is not None else None


def _variables_complete(tf, variables_dir: Path) -> bool:
    """The checkpoint index opens (a missing or damaged one raises) and the data shards hold at least the bytes its
    numeric variables need: a truncated or emptied shard is left to the full load, which names the damage."""
    reader = tf.train.load_checkpoint(str(variables_dir / "variables"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    needed = sum(int(np.prod(shapes[name])) * dtypes[name].size for name in shapes if dtypes[name] != tf.string)
    return sum(p.stat().st_size for p in variables_dir.glob("variables.data-*")) >= needed


def tf_keras_model(model: LoadedModel, needs: str, otherwise: str):
    """The LoadedModel's SavedModel as a tf-keras model, for the steps that change a model's layers (pruning,
    fine-tuning); a SavedModel tf-keras cannot load is a UsageError: `needs` says which step needs Keras, `otherwise` what to do."""
    from edgezoo import _tf

    keras = _tf.tf_keras()
    try:
        with _tf.quiet_native_output():
            return keras.models.load_model(model.saved_model_dir, compile=False)
    except Exception as exc:  # a plain SavedModel raises one of several kinds here
        raise UsageError(f"{needs} needs a Keras model, and {model.source} is not one tf-keras can load ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}). {otherwise}") from exc

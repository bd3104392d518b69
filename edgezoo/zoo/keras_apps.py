"""`keras:NAME` -- every architecture in tf_keras.applications, with its pretrained weights.

    keras:MobileNetV2                                   ImageNet weights, 224x224, with the classifier
    keras:MobileNetV2?alpha=0.35&input_size=96          a variant
    keras:EfficientNetB0?include_top=false&pooling=avg  a feature extractor
    keras:ResNet50?weights=none                         random weights, no download
    keras:MobileNet?weights=/path/weights.h5&classes=10&labels=/path/labels.txt

Weights come through edgezoo's cache, mirror and checks: while the application builds, the
`get_file` calls Keras makes for its weights and for the ImageNet class index are answered by
zoo/download.py, with the hash Keras' own source gives for each file. The architecture list comes
from the installed tf_keras (keras_catalog.json, regenerated with `python -m edgezoo.zoo.keras_apps`).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import threading
from functools import lru_cache
from pathlib import Path

from edgezoo.errors import SourceNotFoundError, UsageError
from edgezoo.paths import user_path
from edgezoo.zoo import LoadOptions, register_source
from edgezoo.zoo.base import LoadedModel, Preprocessing, read_signature, sha256_of_path
from edgezoo.zoo.download import DownloadSettings, Remote, fetch_file
from edgezoo.zoo.source_options import parse_bool, parse_options, parse_size, read_labels, split_options

PREFIX = "keras:"
CATALOG_PATH = Path(__file__).with_name("keras_catalog.json")
INPUT_NAME = "image"

# What each family expects, as its module's preprocess_input does it (tests/test_zoo.py checks each
# against tf_keras' own function).
_TF_MODE = Preprocessing(scale=1 / 127.5, offset=-1.0, description="RGB scaled to [-1, 1] (x / 127.5 - 1)")
_CAFFE_MODE = Preprocessing(
    channel_order="BGR", mean=(103.939, 116.779, 123.68),
    description="caffe style: RGB to BGR, ImageNet mean subtracted per channel, no scaling",
)
_TORCH_MODE = Preprocessing(
    scale=1 / 255.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    description="torch style: RGB scaled to [0, 1], then normalised by the ImageNet mean and std",
)
_RAW_MODE = Preprocessing(description="raw RGB pixels 0-255 (the model rescales them itself)")
FAMILY_PREPROCESSING = {
    "mobilenet": _TF_MODE, "mobilenet_v2": _TF_MODE, "inception_v3": _TF_MODE, "inception_resnet_v2": _TF_MODE,
    "xception": _TF_MODE, "nasnet": _TF_MODE, "resnet_v2": _TF_MODE,
    "resnet": _CAFFE_MODE, "vgg16": _CAFFE_MODE, "vgg19": _CAFFE_MODE,
    "densenet": _TORCH_MODE,
    "mobilenet_v3": _RAW_MODE, "efficientnet": _RAW_MODE, "efficientnet_v2": _RAW_MODE, "convnext": _RAW_MODE,
    "regnet": _RAW_MODE, "resnet_rs": _RAW_MODE,
}

# Licences of the ImageNet weights, as the Keras applications documentation states them; others unknown.
WEIGHTS_LICENSES = {
    "vgg16": "CC-BY-4.0", "vgg19": "CC-BY-4.0", "resnet": "MIT", "xception": "MIT", "inception_v3": "Apache-2.0",
    "inception_resnet_v2": "Apache-2.0", "mobilenet": "Apache-2.0", "mobilenet_v2": "Apache-2.0",
    "densenet": "BSD-3-Clause", "nasnet": "Apache-2.0",
}

# Source-string options: how to parse each, and the builder argument it sets (None: edgezoo's own).
OPTION_PARSERS = {
    "input_size": parse_size,
    "alpha": float,
    "minimalistic": parse_bool,
    "include_top": parse_bool,
    "classes": int,
    "pooling": lambda v: {"avg": "avg", "max": "max", "none": None}[v.lower()],
    "classifier_activation": lambda v: None if v.lower() == "none" else v,
    "weights": str,
    "labels": str,
}
_EDGEZOO_OPTIONS = ("input_size", "labels")  # not builder arguments


@lru_cache(maxsize=1)
def catalog() -> dict[str, dict]:
    """Architecture name -> {module, input_size, parameters}, from the generated keras_catalog.json."""
    return json.loads(CATALOG_PATH.read_text())["architectures"]


def _matches(source: str) -> bool:
    return source.startswith(PREFIX)


@register_source("keras", _matches, describe="keras:NAME (Keras applications, e.g. keras:MobileNetV2?alpha=0.35&input_size=96)")
def load_keras_app(source: str, options: LoadOptions) -> LoadedModel:
    request = parse_source(source)
    settings = DownloadSettings.from_options(options)
    fetched = []
    model = _build(request, settings, fetched)
    labels = _labels(request, settings, fetched)
    saved_model = _export(model)
    inputs, outputs = read_signature(saved_model)
    weights_file = fetched[0] if fetched and request.weights == "imagenet" else None
    return LoadedModel(
        name=request.display_name,
        source=request.canonical,
        saved_model_dir=saved_model,
        inputs=inputs,
        outputs=outputs,
        sha256=weights_file.sha256 if weights_file else sha256_of_path(saved_model),
        version=weights_file.path.name if weights_file else None,
        task="classification" if request.include_top else None,
        preprocessing=FAMILY_PREPROCESSING[request.module],
        labels=labels,
        license=WEIGHTS_LICENSES.get(request.module) if request.weights == "imagenet" else None,
        description=f"{request.architecture} from tf_keras.applications ({request.canonical}), "
                    f"{'ImageNet' if request.weights == 'imagenet' else 'random' if request.weights is None else 'user-given'} weights",
        author="Keras applications (tf_keras)" if request.weights == "imagenet" else None,
        details={
            "architecture": request.architecture,
            "family": request.module,
            "parameters": int(model.count_params()),
            "weights": request.weights,
            "files": [f.to_json() for f in fetched],
        },
    )


class KerasRequest:
    """A parsed `keras:` source: the architecture and the builder arguments."""

    def __init__(self, architecture: str, options: dict):
        self.architecture = architecture
        self.options = options
        entry = catalog()[architecture]
        self.module = entry["module"]
        self.include_top = options.get("include_top", True)
        weights = options.get("weights", "imagenet")
        self.weights = None if weights.lower() == "none" else ("imagenet" if weights.lower() == "imagenet" else weights)
        # Without a size, the architecture's default: models that take any size still need one to convert.
        size = options.get("input_size") or (entry["input_size"],) * 2
        self.input_shape = (size[0], size[1], 3)

    @property
    def canonical(self) -> str:
        if not self.options:
            return PREFIX + self.architecture
        shown = {k: (f"{v[0]}x{v[1]}" if k == "input_size" else str(v).lower() if isinstance(v, bool) else v)
                 for k, v in sorted(self.options.items())}
        return PREFIX + self.architecture + "?" + "&".join(f"{k}={v}" for k, v in shown.items())

    @property
    def display_name(self) -> str:
        return self.canonical[len(PREFIX):].replace("?", "-").replace("&", "-")

    def builder_kwargs(self) -> dict:
        kwargs = {k: v for k, v in self.options.items() if k not in _EDGEZOO_OPTIONS}
        kwargs["weights"] = self.weights if self.weights in (None, "imagenet") else str(user_path(self.weights).resolve())
        kwargs["input_shape"] = self.input_shape
        return kwargs


def parse_source(source: str) -> KerasRequest:
    name, raw = split_options(source[len(PREFIX):] if source.startswith(PREFIX) else source, set(OPTION_PARSERS))
    if "?" in name:
        unknown = ", ".join(k.split("=")[0] for k in name.split("?", 1)[1].split("&"))
        raise UsageError(f"keras:{name.split('?')[0]}: unknown option(s) {unknown}. Options: {', '.join(OPTION_PARSERS)}.")
    if name not in catalog():
        close = difflib.get_close_matches(name, catalog(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else " `edgezoo zoo list` shows them all."
        raise SourceNotFoundError(f"no Keras application named '{name}'.{hint}")
    options = parse_options(raw, OPTION_PARSERS, f"keras:{name}")
    weights = options.get("weights", "imagenet")
    if weights.lower() not in ("imagenet", "none") and not user_path(weights).is_file():
        raise UsageError(f"keras:{name}: weights must be imagenet, none, or a weights file; '{weights}' is none of them.")
    return KerasRequest(name, options)


def _builder(request: KerasRequest):
    from edgezoo import _tf

    builder = getattr(_tf.tf_keras().applications, request.architecture)
    accepted = set(inspect.signature(builder).parameters)
    for key in request.options:
        target = "input_shape" if key == "input_size" else key
        if key != "labels" and target not in accepted:
            usable = sorted({"input_size" if p == "input_shape" else p for p in accepted} & set(OPTION_PARSERS) | {"labels"})
            raise UsageError(f"keras:{request.architecture} has no option '{key}'. Its options: {', '.join(usable)}.")
    return builder


def _build(request: KerasRequest, settings: DownloadSettings, fetched: list):
    from edgezoo import _tf

    builder = _builder(request)
    try:
        with keras_downloads(settings, fetched), _tf.quiet_native_output():
            return builder(**request.builder_kwargs())
    except ValueError as exc:  # Keras checks sizes, classes and weights against each other
        raise UsageError(f"{request.canonical}: Keras refused these options: {exc}") from exc


def _labels(request: KerasRequest, settings: DownloadSettings, fetched: list) -> tuple[str, ...] | None:
    if "labels" in request.options:
        return read_labels(request.options["labels"])
    if not (request.include_top and request.weights == "imagenet" and request.options.get("classes", 1000) == 1000):
        return None
    import numpy as np
    from tf_keras.src.applications import imagenet_utils

    if imagenet_utils.CLASS_INDEX is None:  # decode_predictions fetches the class index once per process
        with keras_downloads(settings, fetched):
            imagenet_utils.decode_predictions(np.zeros((1, 1000), np.float32), top=1)
    index = imagenet_utils.CLASS_INDEX
    return tuple(index[str(i)][1] for i in range(len(index)))


_GET_FILE_LOCK = threading.Lock()


@contextlib.contextmanager
def keras_downloads(settings: DownloadSettings, fetched: list):
    """Answer tf_keras' `data_utils.get_file` from edgezoo's cache for the block's duration.

    The applications give each weights file's URL and hash only as arguments of that call (the hashes
    sit inside the builder functions), so taking over the call is the one way to use them without
    copying them. Only the application modules look the function up while the block runs (under a lock).
    """
    from tf_keras.src.utils import data_utils

    def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, **_unused):
        cached = fetch_file(Remote.for_url(origin, file_hash or md5_hash, "Keras (the tf_keras source)"), settings)
        fetched.append(cached)
        return str(cached.path)

    with _GET_FILE_LOCK:
        original = data_utils.get_file
        data_utils.get_file = get_file
        try:
            yield
        finally:
            data_utils.get_file = original


def _export(model) -> Path:
    """The canonical SavedModel, with a fixed input name (Keras numbers its input layers per process)."""
    from edgezoo import _tf
    from edgezoo._workspace import scratch_dir

    tf = _tf.tf()
    output_name = model.output_names[0]

    @tf.function(input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)])
    def serve(image):
        return {output_name: model(image, training=False)}

    target = scratch_dir("savedmodel-") / "saved_model"
    with _tf.quiet_native_output():
        # save_traces=False: no per-layer traces (minutes for a deep model); the serving signature is all we read.
        model.save(target, save_format="tf", include_optimizer=False, save_traces=False, signatures={"serving_default": serve})
    return target


# --- the catalog file -----------------------------------------------------------------------------


def build_catalog() -> dict:
    """Every architecture the installed tf_keras.applications offers, built once (no weights) and measured."""
    from edgezoo import _tf

    keras = _tf.tf_keras()
    architectures = {}
    for name in sorted(dir(keras.applications)):
        builder = getattr(keras.applications, name)
        if not (name[0].isupper() and callable(builder)):
            continue
        with _tf.quiet_native_output():
            model = builder(weights=None)
        architectures[name] = {
            "module": builder.__module__.rsplit(".", 1)[-1],
            "input_size": model.input_shape[1] or 224,  # MobileNetV3 takes any size; its weights are for 224
            "parameters": int(model.count_params()),
        }
        keras.backend.clear_session()
    return {"tf_keras": keras.__version__, "architectures": architectures}


if __name__ == "__main__":
    CATALOG_PATH.write_text(json.dumps(build_catalog(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {CATALOG_PATH}")

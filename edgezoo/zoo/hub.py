"""`hub:HANDLE` -- TF Hub and Kaggle models, and local TF Hub-format folders, through tensorflow_hub.

    hub:https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/classification/5
    hub:https://www.kaggle.com/models/google/mobilenet-v2/TensorFlow2/100-224-classification/2
    hub:google/mobilenet-v2/tensorFlow2/100-224-classification/2      (a Kaggle model handle)
    hub:./my_module   or   hub:./my_module.tar.gz                     (a local module)
    hub:HANDLE?input_shape=224,224,3&sha256=HEX&signature=NAME&labels=FILE

Remote modules are fetched as compressed archives (the `?tf-hub-format=compressed` form tensorflow_hub
uses) by zoo/download.py, so mirror, offline, atomic writes and the optional sha256 pin apply, and
extracted into `<cache>/hub/<sha1 of handle>/`, tensorflow_hub's own cache layout. The graph is
scanned (zoo/safety.py) before tensorflow_hub loads it. The input shape comes from the module's
signature, or from `input_shape` when the module accepts any size.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgezoo import _tf
from edgezoo._workspace import scratch_dir
from edgezoo.errors import CorruptModelError, SourceNotFoundError, UsageError
from edgezoo.paths import user_path
from edgezoo.zoo import LoadOptions, cache, register_source
from edgezoo.zoo.base import SIGNATURE_KEY, LoadedModel, Preprocessing, looks_like_classifier, read_signature, sha256_of_path
from edgezoo.zoo.download import DownloadSettings, Remote, fetch_archive
from edgezoo.zoo.safety import check_saved_model, safe_extract_tar
from edgezoo.zoo.source_options import parse_options, parse_sha256, parse_shape, read_labels, split_options

PREFIX = "hub:"
KAGGLE_MODELS = "https://www.kaggle.com/models/"
COMPRESSED_QUERY = "tf-hub-format=compressed"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
OPTION_PARSERS = {"input_shape": parse_shape, "sha256": parse_sha256, "signature": str, "labels": str}
INPUT_NAME = "inputs"  # for modules called as functions, whose inputs have no name
OUTPUT_NAME = "outputs"
# owner/model/framework/variation/version
_KAGGLE_HANDLE = re.compile(r"^[\w.-]+/[\w.-]+/[\w.-]+/[\w.-]+/\d+$")
HUB_IMAGE_PREPROCESSING = Preprocessing(scale=1 / 255.0, description="TF Hub image convention: RGB scaled to [0, 1]")


def _matches(source: str) -> bool:
    return source.startswith(PREFIX)


@register_source("hub", _matches, describe="hub:HANDLE (TF Hub or Kaggle URL, Kaggle handle, local module folder)")
def load_hub(source: str, options: LoadOptions) -> LoadedModel:
    handle, raw = split_options(source[len(PREFIX):], set(OPTION_PARSERS))
    opts = parse_options(raw, OPTION_PARSERS, source)
    module_dir, details = resolve_module(handle, opts.get("sha256"), DownloadSettings.from_options(options))
    check_saved_model(module_dir, options.trust_model)
    saved_model = _export(module_dir, opts, source)
    inputs, outputs = read_signature(saved_model)
    image_input = len(inputs) == 1 and len(inputs[0].shape) == 4 and inputs[0].shape[-1] == 3 and inputs[0].dtype == "float32"
    return LoadedModel(
        name=_name_of(handle),
        source=source,
        saved_model_dir=saved_model,
        inputs=inputs,
        outputs=outputs,
        sha256=details.get("archive_sha256") or sha256_of_path(module_dir),
        task="classification" if looks_like_classifier(outputs, saved_model, named_classifier="classification" in handle) else None,
        preprocessing=HUB_IMAGE_PREPROCESSING if image_input else Preprocessing(),
        labels=read_labels(opts["labels"]) if "labels" in opts else None,
        details={**details, "module_dir": str(module_dir)},
    )


def handle_url(handle: str) -> str:
    """The URL a remote handle stands for (a Kaggle handle becomes its Kaggle models URL)."""
    if handle.startswith(("http://", "https://")):
        return handle
    if _KAGGLE_HANDLE.match(handle):
        return KAGGLE_MODELS + handle
    raise SourceNotFoundError(
        f"'{handle}' is neither a local module folder or archive, nor a TF Hub/Kaggle URL, nor a Kaggle handle "
        "(owner/model/framework/variation/version)."
    )


def module_remote(url: str, sha256: str | None) -> Remote:
    """The compressed archive of a module URL, and its name on a mirror (`<host>/<path>.tar.gz`)."""
    relative = cache.url_relative_path(url)
    if url.endswith(ARCHIVE_SUFFIXES):
        return Remote(url, relative, sha256, "the sha256 option")
    download = url + ("&" if "?" in url else "?") + COMPRESSED_QUERY
    return Remote(download, relative + ".tar.gz", sha256, "the sha256 option")


def resolve_module(handle: str, sha256: str | None, settings: DownloadSettings) -> tuple[Path, dict]:
    """The local folder of a module (fetched into the cache if remote) and what is known of where it came from."""
    local = user_path(handle) if not handle.startswith(("http://", "https://")) else None  # a URL names no local file
    if local is not None and local.is_dir():
        if not (local / "saved_model.pb").is_file():
            raise CorruptModelError(f"'{handle}' is a folder but not a TF Hub module (no saved_model.pb in it).")
        return local, {"handle": str(local)}
    if local is not None and local.is_file() and local.name.endswith(ARCHIVE_SUFFIXES):
        target = scratch_dir("hub-") / "module"
        safe_extract_tar(local, target, what=f"the module archive {local}")
        return _module_root(target, handle), {"handle": str(local), "archive_sha256": sha256_of_path(local)}
    url = handle_url(handle)
    remote = module_remote(url, sha256)
    module_dir = fetch_archive(remote, cache.hub_module_dir(settings.cache, url), settings, what=f"the hub module {url}")
    return _module_root(module_dir, handle), {"handle": url, "download_url": remote.origin, "mirror_path": remote.relative_path}


def _module_root(folder: Path, handle: str) -> Path:
    """The folder holding saved_model.pb: the archive's top level, or its single subfolder."""
    if (folder / "saved_model.pb").is_file():
        return folder
    children = [p for p in folder.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / "saved_model.pb").is_file():
        return children[0]
    raise CorruptModelError(f"the module for '{handle}' ({folder}) holds no saved_model.pb; it is not a TF2 SavedModel module.")


def _name_of(handle: str) -> str:
    parts = [p for p in re.split(r"[/\\]", handle.split("?")[0]) if p and ":" not in p]
    if parts and parts[-1].endswith(ARCHIVE_SUFFIXES):
        parts[-1] = re.sub(r"\.(tar\.gz|tgz|tar)$", "", parts[-1])
    return "-".join(parts[-3:]) or "hub-module"


def _export(module_dir: Path, opts: dict, source: str) -> Path:
    """The module as the canonical SavedModel: one serving signature with static non-batch dimensions."""
    tf = _tf.tf()
    import tensorflow_hub as hub

    try:
        with _tf.quiet_native_output():
            module = hub.load(str(module_dir))
    except Exception as exc:
        raise CorruptModelError(f"tensorflow_hub cannot load the module of {source}: {type(exc).__name__}: {exc}") from exc
    signatures = getattr(module, "signatures", {})
    key = opts.get("signature") or (SIGNATURE_KEY if SIGNATURE_KEY in signatures else None)
    if key is not None:
        if key not in signatures:
            raise UsageError(f"{source} has no signature '{key}' (it has: {', '.join(signatures) or 'none'}).")
        serve = _wrap_signature(tf, signatures[key], opts.get("input_shape"), source)
    elif callable(module):
        serve = _wrap_call(tf, module, opts.get("input_shape"), source)
    else:
        raise CorruptModelError(f"the module of {source} has neither a signature nor a __call__ function to run.")
    holder = tf.Module()
    holder.module = module  # keeps the module's variables in the exported SavedModel
    target = scratch_dir("savedmodel-") / "saved_model"
    with _tf.quiet_native_output():
        tf.saved_model.save(holder, str(target), signatures={SIGNATURE_KEY: serve})
    return target


def _static_shape(shape: tuple, given: tuple | None, what: str, source: str) -> tuple:
    if given is not None:
        if len(given) != len(shape) - 1:
            raise UsageError(f"{source}: input_shape has {len(given)} dimensions; {what} has {len(shape) - 1} (without the batch).")
        return (None, *given)
    if any(d is None for d in shape[1:]):
        shown = ",".join("?" if d is None else str(d) for d in shape[1:])
        raise UsageError(f"{source}: {what} accepts shape ({shown}); give the size, e.g. hub:...?input_shape=224,224,3.")
    return (None, *shape[1:])


def _wrap_signature(tf, function, given_shape, source: str):
    specs = function.structured_input_signature[1]
    if len(specs) != 1:
        if given_shape is not None or any(d is None for s in specs.values() for d in s.shape[1:]):
            raise UsageError(f"{source}: input_shape applies to single-input modules; this signature has {', '.join(specs)}.")
        return function
    (name, spec), = specs.items()
    shape = _static_shape(tuple(spec.shape.as_list()), given_shape, f"its input '{name}'", source)

    @tf.function(input_signature=[tf.TensorSpec(shape, spec.dtype, name=name)])
    def serve(x):
        return function(**{name: x})

    return serve


def _wrap_call(tf, module, given_shape, source: str):
    spec = _call_input_spec(module)
    if spec is None:
        raise CorruptModelError(f"the module of {source} has no traced __call__ with a tensor input.")
    shape = _static_shape(tuple(spec.shape.as_list()), given_shape, "the module", source)

    @tf.function(input_signature=[tf.TensorSpec(shape, spec.dtype, name=INPUT_NAME)])
    def serve(inputs):
        result = module(inputs)
        return dict(result) if isinstance(result, dict) else {OUTPUT_NAME: result}

    return serve


def _call_input_spec(module):
    """The first tensor argument of the module's traced __call__ (a hub module traces it with its input spec)."""
    functions = getattr(module.__call__, "concrete_functions", None) or []
    for function in functions:
        args = function.structured_input_signature[0]
        if args and hasattr(args[0], "shape") and hasattr(args[0], "dtype"):
            return args[0]
    return None

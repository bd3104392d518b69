"""A TF.js graph model read from its model.json: the signature's inputs and outputs, the weight shards it names,
its ops, the weight quantisation, and userDefinedMetadata."""

from __future__ import annotations

import json
from pathlib import Path

from edgezoo.formats.inspect import ArtifactInfo, TensorInfo
from edgezoo.formats.base import Quantization
from edgezoo.errors import CorruptModelError, EdgezooError

FORMAT = "tfjs"
TARGET = "browser"
DTYPES = {"DT_FLOAT": "float32", "DT_HALF": "float16", "DT_INT32": "int32", "DT_INT64": "int64", "DT_BOOL": "bool",
          "DT_UINT8": "uint8", "DT_INT8": "int8", "DT_STRING": "str"}


def matches(path: Path) -> bool:
    return path.suffix == ".json"


def read(path: Path) -> ArtifactInfo:
    """model.json is read as untrusted JSON: any shape of it ends in CorruptModelError; weight paths must stay in its folder."""
    from edgezoo.formats.tfjs.convert import graph_nodes
    from edgezoo.zoo.safety import check_json_size, contained_file

    try:
        check_json_size(path)
        model_json = json.loads(path.read_text())
        manifest = model_json["weightsManifest"]
        signature = model_json.get("signature") or {}
        if not signature.get("inputs") or not signature.get("outputs"):
            raise CorruptModelError(f"{path} has no signature; convert the model with tensorflowjs_converter from a SavedModel signature.")
        shards = tuple(contained_file(path.parent, p, f"{path} (a weight file of its weightsManifest)") for group in manifest for p in group["paths"])
        missing = [str(s) for s in shards if not s.is_file()]
        if missing:
            raise CorruptModelError(f"{path} names weight files that are not there: {', '.join(missing)}.")
        stored = {w.get("quantization", {}).get("dtype") for group in manifest for w in group["weights"]}
        quantization = Quantization.FLOAT16 if "float16" in stored else Quantization.DYNAMIC_INT8 if stored & {"uint8", "uint16"} else Quantization.FLOAT32
        return ArtifactInfo(
            format=FORMAT,
            main=path,
            files=(path, *shards),
            input_tensors=tuple(_tensor(str(name), spec) for name, spec in signature["inputs"].items()),
            output_tensors=tuple(_tensor(str(name), spec) for name, spec in signature["outputs"].items()),
            ops=tuple(sorted({str(op) for op, _ in graph_nodes(model_json)} - {"Const", "Placeholder"})),
            quantization=quantization,
            metadata=model_json.get("userDefinedMetadata") or None,
            details={"weights_stored_as": sorted(str(d or "float32") for d in stored), "shards": len(shards),
                     "converted_by": model_json.get("convertedBy")},
        )
    except EdgezooError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:  # any shape of JSON
        raise CorruptModelError(f"{path} is not a TF.js graph model.json: {type(exc).__name__}: {exc}") from exc


def _tensor(name: str, spec: dict) -> TensorInfo:
    dims = tuple(None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in spec.get("tensorShape", {}).get("dim", []))
    return TensorInfo(name, dims, DTYPES.get(spec.get("dtype"), str(spec.get("dtype", "unknown"))))

"""Runs in .venv-mediapipe (MediaPipe 1.2.3, nothing of edgezoo): what an app does with a .tflite.

    python mediapipe_app.py classify MODEL IMAGES.npy   -> JSON: per image, every category (index, name, score) by score
    python mediapipe_app.py metadata MODEL              -> JSON: the TFLite metadata as MediaPipe's own schema module reads it

Errors MediaPipe raises (a model it refuses) are printed as {"error": "..."} with exit code 0, for the test to read.
"""

import json
import sys
import zipfile

import numpy as np


def classify(model: str, images_path: str) -> list:
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core import base_options

    images = np.load(images_path)
    options = vision.ImageClassifierOptions(base_options=base_options.BaseOptions(model_asset_path=model), max_results=-1)
    results = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image in images:
            found = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            results.append([{"index": c.index, "name": c.category_name, "score": float(c.score)} for c in found.classifications[0].categories])
    return results


def metadata(model: str) -> dict:
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta
    from mediapipe.tasks.metadata import schema_py_generated as schema

    data = open(model, "rb").read()
    tflite = schema.Model.GetRootAs(data, 0)
    entry = next(tflite.Metadata(i) for i in range(tflite.MetadataLength()) if tflite.Metadata(i).Name() == b"TFLITE_METADATA")
    buffer = tflite.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    assert meta.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
    root = meta.ModelMetadata.GetRootAs(buffer, 0)
    subgraph = root.SubgraphMetadata(0)
    image = subgraph.InputTensorMetadata(0)
    properties = meta.ImageProperties()
    content = image.Content()
    properties.Init(content.ContentProperties().Bytes, content.ContentProperties().Pos)
    unit = image.ProcessUnits(0)
    normalization = meta.NormalizationOptions()
    normalization.Init(unit.Options().Bytes, unit.Options().Pos)
    output = subgraph.OutputTensorMetadata(0)
    labels_file = output.AssociatedFiles(0)
    with zipfile.ZipFile(model) as archive:
        labels = archive.read(labels_file.Name().decode()).decode().splitlines()
    return {
        "name": root.Name().decode(),
        "min_parser_version": root.MinParserVersion().decode(),
        "input": image.Name().decode(),
        "content_type": content.ContentPropertiesType(),
        "color_space": properties.ColorSpace(),
        "process_unit_type": unit.OptionsType(),
        "mean": normalization.MeanAsNumpy().tolist(),
        "std": normalization.StdAsNumpy().tolist(),
        "min": image.Stats().MinAsNumpy().tolist(),
        "max": image.Stats().MaxAsNumpy().tolist(),
        "output": output.Name().decode(),
        "labels_file": labels_file.Name().decode(),
        "labels_file_type": labels_file.Type(),
        "labels": labels,
    }


if __name__ == "__main__":
    command, model, *rest = sys.argv[1:]
    try:
        result = classify(model, *rest) if command == "classify" else metadata(model)
    except Exception as exc:  # MediaPipe maps its status codes to several exception types (ValueError, FileNotFoundError...)
        result = {"error": str(exc), "error_type": type(exc).__name__}
    print(json.dumps(result))

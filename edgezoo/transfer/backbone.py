"""A feature extractor from any zoo source, as a tf-keras model that takes the backbone's own (preprocessed) input.

The zoo loads the source (every loader, cache, mirror and safety check of edgezoo/zoo/ applies); this module only turns
the LoadedModel into something a head can be trained on. One function per source kind, in EXTRACTORS:

    keras:NAME        built without its top and pooled (include_top=false, pooling=avg unless given)
    hub:HANDLE        a feature-vector module, frozen (tensorflow_hub.KerasLayer over its serving signature)
    digits-cnn, paths a Keras model cut at `?features=LAYER`, else at the input of its last layer with weights (its classifier)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from edgezoo import _tf
from edgezoo.errors import UsageError
from edgezoo.zoo import LoadedModel, Preprocessing, load
from edgezoo.zoo.base import tf_keras_model
from edgezoo.zoo.source_options import split_options

FEATURES_OPTION = "features"


@dataclass
class Backbone:
    loaded: LoadedModel  # what the zoo loaded (source, sha256, licence)
    model: object  # tf-keras model: preprocessed image [N, H, W, C] -> features [N, D]
    preprocessing: Preprocessing  # what the backbone expects of raw pixels
    kind: str
    fine_tunable: bool  # its layers can be unfrozen (--fine-tune-layers)
    details: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.model.input_shape[1:])

    @property
    def feature_size(self) -> int:
        return int(self.model.output_shape[-1])

    def to_json(self) -> dict:
        return {"source": self.loaded.source, "name": self.loaded.name, "sha256": self.loaded.sha256, "kind": self.kind,
                "input_shape": list(self.image_shape), "feature_size": self.feature_size,
                "preprocessing": self.preprocessing.to_json(), "license": self.loaded.license, **self.details}


def load_backbone(source: str, load_options, features: str | None = None) -> Backbone:
    """The feature extractor for a source string (`?features=LAYER` may be written into it)."""
    base, options = split_options(source, {FEATURES_OPTION})
    layer = options.get(FEATURES_OPTION) or features
    kind = "keras" if base.startswith("keras:") else "hub" if base.startswith("hub:") else "keras-model"
    if layer is not None and kind != "keras-model":
        raise UsageError(f"{source}: ?features=LAYER cuts a local Keras model or a bundled one; {kind} sources are cut already "
                         "(keras: without its top, hub: a feature-vector module).")
    backbone = EXTRACTORS[kind](base, load_options, layer)
    _check_image_input(backbone)
    return backbone


def _keras_application(source: str, load_options, _layer) -> Backbone:
    from edgezoo.zoo import keras_apps

    name, options = split_options(source[len(keras_apps.PREFIX):], set(keras_apps.OPTION_PARSERS))
    options["include_top"] = "false"
    options.setdefault("pooling", "avg")
    loaded = load(f"{keras_apps.PREFIX}{name}?{urlencode(sorted(options.items()))}", load_options)
    model = _keras_model(loaded)
    return Backbone(loaded, model, loaded.preprocessing, "keras", True, {"family": loaded.details.get("family")})


def _hub_module(source: str, load_options, _layer) -> Backbone:
    import tensorflow_hub as hub

    loaded = load(source, load_options)
    if len(loaded.outputs) != 1 or len(loaded.outputs[0].shape) != 2:
        shown = ", ".join(f"{o.name} {list(o.shape)}" for o in loaded.outputs)
        raise UsageError(f"{source} is not a feature-vector module: it returns {shown}, where one [N, features] output was expected. "
                         "Use a handle of a .../feature_vector/... module.")
    keras = _tf.tf_keras()
    spec = loaded.inputs[0]
    image = keras.Input(shape=spec.shape[1:], name="backbone_input")
    layer = hub.KerasLayer(str(loaded.saved_model_dir), signature=loaded.signature_key, signature_outputs_as_dict=True,
                           trainable=False, name="hub_module")
    features = layer({spec.name: image})[loaded.outputs[0].name]
    return Backbone(loaded, keras.Model(image, features, name="hub_backbone"), loaded.preprocessing, "hub", False)


def _keras_model_cut(source: str, load_options, layer_name: str | None) -> Backbone:
    loaded = load(source, load_options)
    model = _keras_model(loaded)
    keras = _tf.tf_keras()
    if layer_name is not None:
        try:
            output = model.get_layer(layer_name).output
        except ValueError:
            names = [layer.name for layer in model.layers]
            raise UsageError(f"{source} has no layer '{layer_name}'. Its layers: {', '.join(names[-12:])}"
                             f"{' (the last 12)' if len(names) > 12 else ''}.") from None
        cut = layer_name
    else:
        weighted = [layer for layer in model.layers if layer.weights]
        if len(weighted) < 2:
            raise UsageError(f"{source} has too few layers to cut below its classifier; give ?features=LAYER.")
        classifier = weighted[-1]
        output, cut = classifier.input, f"input of {classifier.name}"
    if len(output.shape) == 4:  # a feature map: pooled, as keras: sources are
        output = keras.layers.GlobalAveragePooling2D(name="feature_pool")(output)
    elif len(output.shape) != 2:
        raise UsageError(f"{source}: the features at {cut} have shape {list(output.shape)}; cut at a layer with [N, features] "
                         "or [N, H, W, channels] output (?features=LAYER).")
    extractor = keras.Model(model.inputs, output, name=f"{model.name}_features")
    return Backbone(loaded, extractor, loaded.preprocessing, "keras-model", True, {"cut_at": cut})


def _keras_model(loaded: LoadedModel):
    """The LoadedModel's SavedModel as a tf-keras functional model (the zoo checked it before it was loaded)."""
    keras = _tf.tf_keras()
    model = tf_keras_model(loaded, "finetune", "Use keras:NAME, a hub: feature-vector module, a .h5 file or a SavedModel written "
                           "by tf-keras' model.save() as the feature extractor (a Keras 3 .keras file loads in Keras 3 only: save "
                           "the model with tf-keras as .h5 to fine-tune on it).")
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise UsageError(f"{loaded.source} loads as {type(model).__name__}, not as a Sequential or functional Keras model, so it "
                         "cannot be cut at a layer. Save it as a functional model.")
    return model


def _check_image_input(backbone: Backbone) -> None:
    shape = backbone.model.input_shape
    if isinstance(shape, list) or len(shape) != 4 or shape[-1] not in (1, 3) or None in shape[1:3]:
        raise UsageError(f"{backbone.loaded.source} takes input {shape}; finetune trains image classifiers, whose backbone takes "
                         "one image [N, height, width, 1 or 3] of a fixed size (keras: sources take ?input_size=...).")


# Source kind -> how its extractor is made. A new kind: one function plus one entry here.
EXTRACTORS = {"keras": _keras_application, "hub": _hub_module, "keras-model": _keras_model_cut}

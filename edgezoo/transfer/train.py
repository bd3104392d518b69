"""The classifier and its training: raw pixels -> the family's preprocessing (as layers) -> backbone -> head.

The head is standardised features, dropout, a hidden ReLU layer (--hidden-units; 0 for none) and a dense softmax. Why the
hidden layer (issue 23): odd/even from 600 PNGs on digits-cnn's 64 features stopped at 0.86..0.94 test accuracy with a
linear head (5 seeds), although the backbone reads those PNGs right (its own classifier: 0.997 on the ten digits) and
the training split is nearly linearly separable in them (a logistic regression with C=100 fits 99.8..100% of it). A
linear head under early stopping on validation loss does not get there (200 epochs, a 10x learning rate, the 512
flatten features or fine-tuning the top two layers: 0.88..0.98, above 0.95 on some seeds only); with the hidden layer
the default run scores 0.97..1.00 (bench/transfer.py --experiments folder).

Head first, on a frozen backbone (its features computed once when nothing is augmented), with class weights and early
stopping on validation loss (the best epoch's weights are restored, whether or not training stopped early); then,
with --fine-tune-layers N, the top N backbone layers at a lower learning rate, batch-norm layers kept frozen and in
inference mode (the backbone is called with training=False).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgezoo import _tf
from edgezoo.transfer.backbone import Backbone
from edgezoo.transfer.data import Splits, class_weights
from edgezoo.zoo import Preprocessing

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
HIDDEN_NAME = "head_hidden"
EIGHT_BIT_MAX = 255.0

# An epoch's report: (phase, epoch number from 1, most epochs of the phase, {loss, accuracy, val_loss, val_accuracy}).
EpochReport = Callable[[str, int, int, dict], None]


@dataclass
class Training:
    model: object  # tf-keras: raw pixels [N, H, W, C] 0..255 -> class probabilities
    history: list[dict] = field(default_factory=list)  # one row per epoch: phase, epoch, loss, accuracy, val_loss, val_accuracy
    best: dict = field(default_factory=dict)  # per phase: the epoch whose weights were kept
    class_weights: dict = field(default_factory=dict)


def preprocessing_layers(preprocessing: Preprocessing, channels: int) -> list:
    """The family's preprocessing of raw 8-bit pixels as standard tf-keras layers (so the device gives raw pixels)."""
    keras = _tf.tf_keras()
    layers = []
    if preprocessing.channel_order == "BGR" and channels == 3:  # a fixed 1x1 convolution that reverses the channels
        flip = keras.layers.Conv2D(3, 1, use_bias=False, trainable=False, name="rgb_to_bgr",
                                   kernel_initializer=keras.initializers.Constant(np.eye(3)[::-1].reshape(1, 1, 3, 3)))
        layers.append(flip)
    scale = preprocessing.scale * preprocessing.pixel_max / EIGHT_BIT_MAX
    layers.append(keras.layers.Rescaling(scale, preprocessing.offset, name="rescale"))
    if preprocessing.mean is not None or preprocessing.std is not None:
        mean = np.asarray(preprocessing.mean if preprocessing.mean is not None else (0.0,) * channels, np.float32)
        std = np.asarray(preprocessing.std if preprocessing.std is not None else (1.0,) * channels, np.float32)
        layers.append(keras.layers.Normalization(axis=-1, mean=mean, variance=std**2, name="normalize"))
    return layers


def raw_preprocessing(backbone: Backbone) -> Preprocessing:
    """What the trained model expects: raw pixels, its preprocessing inside it."""
    inner = backbone.preprocessing
    colours = "grayscale" if backbone.image_shape[-1] == 1 else "RGB"
    return Preprocessing(channel_order=colours, pixel_max=EIGHT_BIT_MAX,
                         description=f"raw {colours} pixels 0-255; the model applies its backbone's preprocessing itself, as its "
                                     f"first layers ({inner.description})")


def augmentation(seed: int):
    keras = _tf.tf_keras()
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, seed=seed + 1),
        keras.layers.RandomZoom((-0.15, 0.0), seed=seed + 2),  # zooming in: a random crop, resized back
    ], name="augmentation")


def build_classifier(backbone: Backbone, num_classes: int, dropout: float, seed: int, hidden_units: int = 0):
    """(the classifier on raw pixels, its head alone, the feature model: raw pixels -> backbone features)."""
    keras = _tf.tf_keras()
    raw = keras.Input(shape=backbone.image_shape, name=INPUT_NAME)
    x = raw
    for layer in preprocessing_layers(backbone.preprocessing, backbone.image_shape[-1]):
        x = layer(x)
    backbone.model.trainable = False
    features = backbone.model(x, training=False)  # batch-norm layers in inference mode, also when fine-tuned
    # Features standardised first (statistics of the training split, fixed): backbones' feature scales differ by orders of
    # magnitude, and a head on unscaled features learns slowly and unevenly.
    layers = [keras.layers.Normalization(axis=-1, input_shape=(backbone.feature_size,), name="feature_scale"),
              keras.layers.Dropout(dropout, seed=seed)]
    if hidden_units:
        layers += [keras.layers.Dense(hidden_units, activation="relu", name=HIDDEN_NAME),
                   keras.layers.Dropout(dropout, seed=seed + 1, name="hidden_dropout")]
    head = keras.Sequential([*layers, keras.layers.Dense(num_classes, activation="softmax", name=OUTPUT_NAME)], name="head")
    return keras.Model(raw, head(features), name="classifier"), head, keras.Model(raw, features, name="features")


def best_weights(patience: int, phase: str, epochs: int, history: list, best: dict, report: EpochReport | None):
    """A callback: early stopping on validation loss that always ends on the best epoch's weights (tf-keras' EarlyStopping
    restores them only when it stops early)."""
    keras = _tf.tf_keras()

    class BestWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.best_loss, self.best_epoch, self.weights, self.wait = np.inf, 0, None, 0

        def on_epoch_end(self, epoch, logs=None):
            row = {"phase": phase, "epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            history.append(row)
            if report is not None:
                report(phase, epoch + 1, epochs, row)
            loss = row.get("val_loss", np.inf)
            if loss < self.best_loss:
                self.best_loss, self.best_epoch, self.wait = loss, epoch + 1, 0
                self.weights = self.model.get_weights()
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.set_weights(self.weights)
            best[phase] = {"epoch": self.best_epoch, "val_loss": float(self.best_loss),
                           "epochs_run": sum(1 for row in history if row["phase"] == phase)}

    return BestWeights()


def train(backbone: Backbone, splits: Splits, options, report: EpochReport | None = None) -> Training:
    keras = _tf.tf_keras()
    if options.fine_tune_layers:
        check_fine_tunable(backbone, options.fine_tune_layers)  # before the head's training, not after it
    keras.utils.set_random_seed(options.seed)
    num_classes = len(splits.train.class_names)
    model, head, feature_model = build_classifier(backbone, num_classes, options.dropout, options.seed, options.hidden_units)
    weights = class_weights(splits.train.labels, num_classes)
    training = Training(model, class_weights={splits.train.class_names[i]: w for i, w in weights.items()})
    train_x, val_x = splits.train.pixels, splits.validation.pixels
    train_y, val_y = splits.train.labels, splits.validation.labels

    def fit(trainee, x, vx, epochs, learning_rate, phase):
        trainee.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        callback = best_weights(options.patience, phase, epochs, training.history, training.best, report)
        with _tf.quiet_native_output():
            trainee.fit(x, train_y, validation_data=(vx, val_y), epochs=epochs, batch_size=options.batch_size,
                        class_weight=weights, callbacks=[callback], verbose=0, shuffle=True)

    with _tf.quiet_native_output():
        features = feature_model.predict(train_x, batch_size=64, verbose=0)
    adapt_feature_scale(head.get_layer("feature_scale"), features)
    if options.augment:  # augmented images change every epoch: no feature cache
        augmented = keras.Sequential([augmentation(options.seed), model], name="augmented")
        fit(augmented, train_x, val_x, options.epochs, options.learning_rate, "head")
    else:  # the frozen backbone's features once, then the head alone: the same result, many times faster
        with _tf.quiet_native_output():
            val_features = feature_model.predict(val_x, batch_size=64, verbose=0)
        fit(head, features, val_features, options.epochs, options.learning_rate, "head")
    if options.fine_tune_layers:
        unfreeze_top(backbone, options.fine_tune_layers)
        trainee = keras.Sequential([augmentation(options.seed), model], name="augmented") if options.augment else model
        fit(trainee, train_x, val_x, options.fine_tune_epochs, options.tuning_learning_rate, "fine-tune")
    training.model = fold_head(feature_model, head)
    return training


def adapt_feature_scale(layer, features: np.ndarray) -> None:
    """Standardise by the training features' statistics; a feature that never varies (a dead ReLU) keeps scale 1, so that
    dividing by a near-zero deviation cannot blow up the weights folded from it."""
    layer.adapt(features, batch_size=256)
    mean, variance, count = layer.get_weights()
    floor = 1e-3 * float(variance.mean()) if variance.size and variance.mean() > 0 else 1.0
    layer.set_weights([mean, np.where(variance > floor, variance, 1.0).astype(variance.dtype), count])


def fold_head(feature_model, head):
    """The exported classifier: raw pixels -> preprocessing -> backbone -> the head's dense layers, with the feature
    standardisation folded into the first one's weights (W / std, b - mean / std . W) and dropout gone: the device runs
    no extra ops."""
    keras = _tf.tf_keras()
    scale = head.get_layer("feature_scale")
    dense_layers = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
    mean, variance, _ = (np.asarray(w, np.float64).reshape(-1) for w in scale.get_weights())
    std = np.sqrt(np.maximum(variance, keras.backend.epsilon() ** 2))
    x = feature_model.output
    for index, dense in enumerate(dense_layers):
        kernel, bias = (np.asarray(w, np.float64) for w in dense.get_weights())
        if index == 0:
            kernel, bias = kernel / std[:, None], bias - (mean / std) @ kernel
        copy = keras.layers.Dense(kernel.shape[1], activation=dense.activation, name=dense.name)
        x = copy(x)
        copy.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return keras.Model(feature_model.input, x, name="classifier")


def unfreeze_top(backbone: Backbone, count: int) -> list[str]:
    """The top `count` layers of the backbone made trainable, batch-norm layers excepted; returns their names."""
    keras = _tf.tf_keras()
    check_fine_tunable(backbone, count)
    layers = backbone.model.layers
    backbone.model.trainable = True
    unfrozen = []
    for index, layer in enumerate(layers):
        top = index >= len(layers) - count
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
        if layer.trainable and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen


def check_fine_tunable(backbone: Backbone, count: int) -> None:
    from edgezoo.errors import UsageError

    if not backbone.fine_tunable:
        raise UsageError(f"--fine-tune-layers: the backbone {backbone.loaded.source} ({backbone.kind}) is used frozen; fine-tuning "
                         "takes a Keras backbone (keras:NAME, a bundled model, a .h5 or tf-keras SavedModel).")
    if count > len(backbone.model.layers) - 1:
        raise UsageError(f"--fine-tune-layers {count}: the backbone has {len(backbone.model.layers) - 1} layers after its input.")

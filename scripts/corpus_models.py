"""The corpus models, one function each: draw training data, build and train a tiny network, and say how it is served.

A model function takes a Context (TensorFlow, tf-keras, the training generator, `fit`) and returns an Export:
the serving signature's input specs, the serving function (inputs by name -> dict of named outputs), the
variables it reads, the task that generates its data.npz, and the scores its model.json records.
scripts/build_corpus.py saves, evaluates and writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import corpus_tasks as tasks


@dataclass(frozen=True)
class Score:
    output: str
    target: str
    score: str  # a key of tests.corpus.SCORES


@dataclass(frozen=True)
class Export:
    inputs: dict[str, tuple]  # input name -> shape with the batch first (None where dynamic)
    serve: Callable  # keyword arguments named after the inputs -> dict of named outputs
    variables: list
    task: Callable  # (rng, count) -> (inputs, targets): the distribution data.npz is drawn from
    scores: tuple[Score, ...]
    training: dict = field(default_factory=dict)
    # A tf-keras model to ship as a legacy HDF5 file (model.hdf5, loaded through edgezoo's local source as a user gives
    # it) instead of the serving SavedModel; `serve` must then be what that model computes.
    keras_file: object = None


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    covers: str
    task: str | None  # "classification" or None
    kinds: dict[str, str]  # output name -> a key of OUTPUT_KINDS
    samples: int  # inputs in data.npz
    build: Callable


# What each output holds, so that the decision metrics that fit it can be chosen (docs/corpus.md).
OUTPUT_KINDS = {
    "softmax": "class probabilities summing to 1 (top-1 decides)",
    "sigmoid": "independent probabilities in [0, 1] (thresholded at 0.5: multi-label heads, probability maps)",
    "box": "box coordinates in [0, 1] (ymin, xmin, ymax, xmax)",
    "embedding": "a unit-length feature vector (compared by cosine)",
    "regression": "real values in the target's units",
}
MODELS: dict[str, Spec] = {}


def corpus_model(name: str, *, description: str, covers: str, kinds: dict[str, str], task: str | None = None, samples: int = 200):
    assert set(kinds.values()) <= set(OUTPUT_KINDS), kinds

    def decorator(build):
        MODELS[name] = Spec(name, description, covers, task, kinds, samples, build)
        return build

    return decorator


SHAPE_KINDS = ("square", "frame", "plus", "disk")


@corpus_model("shapes-cnn", kinds={"shape_probabilities": "softmax"}, task="classification",
              description="Small CNN that tells four grey shapes apart (square, frame, plus, disk) in 16x16 images.",
              covers="softmax classifier: Conv2D, MaxPool2D, Dense, Softmax; one [N, 4] probability output")
def shapes_cnn(ctx):
    keras = ctx.keras
    x, y = tasks.shapes(ctx.rng, 3000, SHAPE_KINDS)
    image = keras.Input((16, 16, 1), name="image")
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(image)
    h = keras.layers.MaxPooling2D(2, name="pool1")(h)
    h = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(h)
    h = keras.layers.MaxPooling2D(2, name="pool2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    logits = keras.layers.Dense(4, name="logits")(h)
    net = keras.Model(image, keras.layers.Softmax(name="probabilities")(logits), name="shapes_cnn")
    training = ctx.fit(net, x["image"], y["label"], loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=15)
    return Export({"image": (None, 16, 16, 1)}, lambda image: {"shape_probabilities": net(image)}, net.variables,
                  lambda rng, n: tasks.shapes(rng, n, SHAPE_KINDS), (Score("shape_probabilities", "label", "accuracy"),), training)


@corpus_model("multilabel-heads", kinds={"shape_present": "sigmoid", "quadrant_occupied": "sigmoid"},
              description="Which of four small shapes an image holds, and which quadrants hold one: two multi-label sigmoid heads.",
              covers="multi-label sigmoid heads of different shapes ([N, 4] and [N, 2, 2]) on a shared CNN trunk")
def multilabel_heads(ctx):
    keras = ctx.keras
    x, y = tasks.several_shapes(ctx.rng, 3000)
    image = keras.Input((16, 16, 1), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(image)
    h = keras.layers.MaxPooling2D(2, name="pool1")(h)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(h)
    kinds = keras.layers.GlobalMaxPooling2D(name="kind_pool")(h)
    present = keras.layers.Dense(4, activation="sigmoid", name="shape_present")(kinds)
    quadrant = keras.layers.Conv2D(1, 3, padding="same", name="quadrant_conv")(h)
    quadrant = keras.layers.MaxPooling2D(4, name="quadrant_pool")(quadrant)
    quadrant = keras.layers.Reshape((2, 2), name="quadrant_grid")(quadrant)
    quadrant = keras.layers.Activation("sigmoid", name="quadrant_occupied")(quadrant)
    net = keras.Model(image, [present, quadrant], name="multilabel_heads")
    training = ctx.fit(net, x["image"], [y["shape_present"], y["quadrant_occupied"]], loss="binary_crossentropy", epochs=20)
    serve = lambda image: dict(zip(("shape_present", "quadrant_occupied"), net(image)))  # noqa: E731
    return Export({"image": (None, 16, 16, 1)}, serve, net.variables, tasks.several_shapes,
                  (Score("shape_present", "shape_present", "binary_accuracy"),
                   Score("quadrant_occupied", "quadrant_occupied", "binary_accuracy")), training)


@corpus_model("signal-split", kinds={"trend": "regression", "ripple": "regression"},
              description="Splits a 64-sample signal into its slow trend and its fast ripple: two [N, 64] outputs.",
              covers="two outputs of the same shape with distinct content; names sort opposite to the graph's order (trend is computed first); Conv1D")
def signal_split(ctx):
    keras = ctx.keras
    x, y = tasks.signal_split(ctx.rng, 4000)
    signal = keras.Input((64,), name="signal")
    h = keras.layers.Reshape((64, 1), name="as_sequence")(signal)
    h = keras.layers.Conv1D(12, 9, padding="same", activation="tanh", name="conv1")(h)
    h = keras.layers.Conv1D(12, 9, padding="same", activation="tanh", name="conv2")(h)
    trend = keras.layers.Conv1D(1, 9, padding="same", name="trend_conv")(h)
    trend = keras.layers.Flatten(name="trend")(trend)
    ripple = keras.layers.Conv1D(1, 5, padding="same", name="ripple_conv")(h)
    ripple = keras.layers.Flatten(name="ripple")(ripple)
    net = keras.Model(signal, [trend, ripple], name="signal_split")
    training = ctx.fit(net, x["signal"], [y["trend"], y["ripple"]], loss="mse", epochs=25)
    serve = lambda signal: dict(zip(("trend", "ripple"), net(signal)))  # noqa: E731
    return Export({"signal": (None, 64)}, serve, net.variables, tasks.signal_split,
                  (Score("trend", "trend", "r2"), Score("ripple", "ripple", "r2")), training)


@corpus_model("housing-regression", kinds={"price": "regression", "monthly_kwh": "regression"},
              description="Price (about 5,200 +- 900) and three months of energy use (about 3,000 +- 400 kWh) from 8 features and a region.",
              covers="regression outputs of large magnitude (a large offset and a real spread), two inputs, a fixed de-normalisation after Dense layers")
def housing_regression(ctx):
    tf, keras = ctx.tf, ctx.keras
    x, y = tasks.housing(ctx.rng, 4000)
    features = keras.Input((8,), name="features")
    location = keras.Input((4,), name="location")
    h = keras.layers.Concatenate(name="join")([features, location])
    h = keras.layers.Dense(32, activation="relu", name="hidden1")(h)
    h = keras.layers.Dense(32, activation="relu", name="hidden2")(h)
    net = keras.Model([features, location], [keras.layers.Dense(1, name="price_std")(h), keras.layers.Dense(3, name="energy_std")(h)],
                      name="housing_regression")
    # Trained on standardised targets; the served model scales back to the units, as exporters of real regressors do.
    standard = [(y["price"] - tasks.PRICE_MEAN) / tasks.PRICE_STD, (y["monthly_kwh"] - tasks.ENERGY_MEAN) / tasks.ENERGY_STD]
    training = ctx.fit(net, [x["features"], x["location"]], standard, loss="mse", epochs=30)

    def serve(features, location):
        price, energy = net([features, location])
        return {"price": price * tasks.PRICE_STD + tasks.PRICE_MEAN, "monthly_kwh": energy * tasks.ENERGY_STD + tasks.ENERGY_MEAN}

    return Export({"features": (None, 8), "location": (None, 4)}, serve, net.variables, tasks.housing,
                  (Score("price", "price", "r2"), Score("monthly_kwh", "monthly_kwh", "r2")), training)


def log_mel(tf, waveform):
    """tf.signal front end: STFT (128-sample frames, hop 64), magnitude, 16 mel bands, log: [N, 7, 16]."""
    stft = tf.signal.stft(waveform, frame_length=128, frame_step=64, fft_length=128)
    mel = tf.signal.linear_to_mel_weight_matrix(16, 65, tasks.SAMPLE_RATE, 60.0, 1800.0)
    return tf.math.log(tf.tensordot(tf.abs(stft), mel, 1) + 1e-3)


@corpus_model("audio-logmel", kinds={"sound_probabilities": "softmax"}, task="classification", samples=180,
              description="Tells low, middle and high tones and noise bursts apart in 128 ms of 4 kHz audio, at any loudness.",
              covers="audio front end from tf.signal (STFT, RFFT, ComplexAbs, mel matrix, Log) on a float32 waveform; softmax head")
def audio_logmel(ctx):
    tf, keras = ctx.tf, ctx.keras
    x, y = tasks.tones(ctx.rng, 3000)
    features = log_mel(tf, tf.constant(x["waveform"])).numpy()
    inputs = keras.Input((7, 16), name="log_mel")
    h = keras.layers.Flatten(name="flatten")(inputs)
    h = keras.layers.Dense(16, activation="relu", name="hidden")(h)
    head = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="probabilities")(h), name="audio_logmel")
    training = ctx.fit(head, features, y["label"], loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=15)
    serve = lambda waveform: {"sound_probabilities": head(log_mel(tf, waveform))}  # noqa: E731
    return Export({"waveform": (None, tasks.WAVEFORM_LENGTH)}, serve, head.variables, tasks.tones,
                  (Score("sound_probabilities", "label", "accuracy"),), training)


def dft_kernel():
    """A 64-point windowed DFT as a Conv2D kernel [1, 64, 1, 66]: 33 real (cosine) then 33 imaginary (sine) filters."""
    n = np.arange(64)[:, None]
    k = np.arange(33)[None, :]
    window = np.hanning(64)[:, None]
    basis = np.concatenate([window * np.cos(2 * np.pi * n * k / 64), -window * np.sin(2 * np.pi * n * k / 64)], axis=1)
    return basis.astype(np.float32)[None, :, None, :]


def conv_spectrogram(tf, waveform):
    """Front end of Conv2D, Square, Sqrt and Log, with MirrorPad, Assert and CheckNumerics: [N, 17, 33] log magnitudes."""
    tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(waveform)), ["the waveform holds NaN or Inf samples"])
    padded = tf.pad(waveform, [[0, 0], [32, 32]], mode="REFLECT")  # MirrorPad: frames centred on every hop
    frames = tf.nn.conv2d(padded[:, None, :, None], tf.constant(dft_kernel()), strides=[1, 1, tasks.HOP, 1], padding="VALID")
    frames = frames[:, 0]
    power = tf.square(frames[..., :33]) + tf.square(frames[..., 33:])
    magnitude = tf.sqrt(power)
    return tf.debugging.check_numerics(tf.math.log(magnitude + 1e-3), "log-magnitude spectrogram")


@corpus_model("audio-convspec", kinds={"note": "sigmoid", "onset": "sigmoid", "contour": "sigmoid"}, samples=180,
              description="Note, onset and pitch-contour maps of 8 notes from 128 ms of 4 kHz audio, like a transcription model.",
              covers="audio front end built from Conv2D (DFT as conv), Square, Sqrt, Log, MirrorPad, with Assert and CheckNumerics in the "
                     "serving graph; three sigmoid heads, two of the same shape [N, 17, 8] (note, onset), computed note, onset, contour")
def audio_convspec(ctx):
    tf, keras = ctx.tf, ctx.keras
    x, y = tasks.notes(ctx.rng, 3000)
    features = conv_spectrogram(tf, tf.constant(x["waveform"])).numpy()
    mean, std = float(features.mean()), float(features.std())
    spectrum = keras.Input((tasks.FRAMES, 33), name="log_magnitude")
    h = keras.layers.Rescaling(1.0 / std, -mean / std, name="normalise")(spectrum)
    h = keras.layers.Conv1D(24, 3, padding="same", activation="relu", name="conv1")(h)
    note = keras.layers.Conv1D(8, 1, activation="sigmoid", name="note")(h)
    rising = keras.layers.Concatenate(name="with_note")([h, note])
    rising = keras.layers.Conv1D(16, 3, padding="same", activation="relu", name="onset_conv")(rising)
    onset = keras.layers.Conv1D(8, 1, activation="sigmoid", name="onset")(rising)
    contour = keras.layers.Conv1D(24, 3, padding="same", activation="sigmoid", name="contour")(h)
    head = keras.Model(spectrum, [note, onset, contour], name="audio_convspec")
    training = ctx.fit(head, features, [y["note"], y["onset"], y["contour"]], loss="binary_crossentropy", epochs=30)
    serve = lambda waveform: dict(zip(("note", "onset", "contour"), head(conv_spectrogram(tf, waveform))))  # noqa: E731
    return Export({"waveform": (None, tasks.WAVEFORM_LENGTH)}, serve, head.variables, tasks.notes,
                  tuple(Score(name, name, "mask_iou") for name in ("note", "onset", "contour")), training)


EMBEDDING_KINDS = ("square", "frame", "plus", "disk", "cross", "ring")


@corpus_model("shape-embedding", kinds={"embedding": "embedding"},
              description="A 16-d L2-normalised embedding of six grey shapes, trained through a cosine classifier that is not exported.",
              covers="embedding / feature-vector output: L2-normalised [N, 16] (l2_normalize), no classifier on top")
def shape_embedding(ctx):
    tf, keras = ctx.tf, ctx.keras
    x, y = tasks.shapes(ctx.rng, 3000, EMBEDDING_KINDS)
    image = keras.Input((16, 16, 1), name="image")
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(image)
    h = keras.layers.MaxPooling2D(2, name="pool1")(h)
    h = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    h = keras.layers.Dense(16, name="project")(h)
    embed = keras.layers.UnitNormalization(name="embedding")(h)
    net = keras.Model(image, embed, name="shape_embedding")
    classes = keras.layers.Dense(len(EMBEDDING_KINDS), use_bias=False, kernel_constraint=keras.constraints.UnitNorm(axis=0), name="cosine")
    trainer = keras.Model(image, keras.layers.Softmax()(10.0 * classes(embed)))
    training = ctx.fit(trainer, x["image"], y["label"], loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=15)
    return Export({"image": (None, 16, 16, 1)}, lambda image: {"embedding": net(image)}, net.variables,
                  lambda rng, n: tasks.shapes(rng, n, EMBEDDING_KINDS), (Score("embedding", "label", "centroid_accuracy"),), training)


@corpus_model("gesture-lstm", kinds={"gesture_probabilities": "softmax"}, task="classification",
              description="An LSTM over 20 steps of 3-axis motion that tells four gestures apart (circle, shake, swipe, lift).",
              covers="recurrent network: tf-keras LSTM (a fused UNIDIRECTIONAL_SEQUENCE_LSTM in TFLite, a Loop or LSTM in ONNX); softmax")
def gesture_lstm(ctx):
    keras = ctx.keras
    x, y = tasks.gestures(ctx.rng, 3000)
    motion = keras.Input((20, 3), name="motion")
    h = keras.layers.LSTM(16, name="lstm")(motion)
    net = keras.Model(motion, keras.layers.Dense(4, activation="softmax", name="probabilities")(h), name="gesture_lstm")
    training = ctx.fit(net, x["motion"], y["label"], loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=15)
    return Export({"motion": (None, 20, 3)}, lambda motion: {"gesture_probabilities": net(motion)}, net.variables, tasks.gestures,
                  (Score("gesture_probabilities", "label", "accuracy"),), training)


def _inverted_residual(keras, x, expand: int, out: int, stride: int, name: str):
    layers = keras.layers
    h = layers.Conv2D(expand, 1, use_bias=False, name=f"{name}_expand")(x)
    h = layers.BatchNormalization(name=f"{name}_expand_bn")(h)
    h = layers.ReLU(6.0, name=f"{name}_expand_relu")(h)
    h = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_depthwise")(h)
    h = layers.BatchNormalization(name=f"{name}_depthwise_bn")(h)
    h = layers.ReLU(6.0, name=f"{name}_depthwise_relu")(h)
    h = layers.Conv2D(out, 1, use_bias=False, name=f"{name}_project")(h)
    h = layers.BatchNormalization(name=f"{name}_project_bn")(h)
    return layers.Add(name=f"{name}_add")([x, h]) if stride == 1 and x.shape[-1] == out else h


@corpus_model("tiny-mobilenet", kinds={"texture_probabilities": "softmax"}, task="classification",
              description="A MobileNetV2-style net (inverted residuals, depthwise convolutions, ReLU6, batch norm) for five colour textures.",
              covers="depthwise-separable MobileNet-style net: DepthwiseConv2D, 1x1 Conv2D, BatchNormalization (folded), ReLU6, residual Add, GAP")
def tiny_mobilenet(ctx):
    keras = ctx.keras
    layers = keras.layers
    x, y = tasks.textures(ctx.rng, 3000)
    image = keras.Input((16, 16, 3), name="image")
    h = layers.Rescaling(2.0, -1.0, name="to_signed")(image)
    h = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(h)
    h = layers.BatchNormalization(name="stem_bn")(h)
    h = layers.ReLU(6.0, name="stem_relu")(h)
    h = _inverted_residual(keras, h, 16, 8, 1, "block1")
    h = _inverted_residual(keras, h, 24, 16, 2, "block2")
    h = _inverted_residual(keras, h, 32, 16, 1, "block3")
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    net = keras.Model(image, layers.Dense(5, activation="softmax", name="probabilities")(h), name="tiny_mobilenet")
    training = ctx.fit(net, x["image"], y["label"], loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=15)
    return Export({"image": (None, 16, 16, 3)}, lambda image: {"texture_probabilities": net(image)}, net.variables, tasks.textures,
                  (Score("texture_probabilities", "label", "accuracy"),), training)


class _Attention:
    """Two-head self-attention written with batched MatMul and Softmax (no Einsum), as a tf-keras layer."""

    @staticmethod
    def layer(keras, tf, width: int, heads: int):
        class SelfAttention(keras.layers.Layer):
            def build(self, input_shape):
                self.qkv = keras.layers.Dense(3 * width, name="qkv")
                self.out = keras.layers.Dense(width, name="out")

            def call(self, x):
                steps = x.shape[1]  # static: a dynamic length would add Shape ops that microcontrollers lack
                qkv = tf.reshape(self.qkv(x), [-1, steps, 3, heads, width // heads])
                q, k, v = (tf.transpose(qkv[:, :, i], [0, 2, 1, 3]) for i in range(3))
                weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / float(np.sqrt(width // heads)), axis=-1)
                mixed = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])
                return self.out(tf.reshape(mixed, [-1, steps, width]))

        return SelfAttention(name="attention")


@corpus_model("token-attention", kinds={"group_mean": "regression"},
              description="For each of 12 (key, value) tokens, the mean value of the tokens with the same key: a transformer block.",
              covers="attention block: LayerNormalization, batched MatMul, Softmax, Transpose/Reshape, GELU (tanh form) MLP, residual Adds")
def token_attention(ctx):
    tf, keras = ctx.tf, ctx.keras
    layers = keras.layers
    x, y = tasks.keyed_tokens(ctx.rng, 6000)
    tokens = keras.Input((tasks.TOKENS, tasks.KEYS + 1), name="tokens")
    h = layers.Dense(16, name="embed")(tokens)
    h = layers.Add(name="residual1")([h, _Attention.layer(keras, tf, 16, 2)(layers.LayerNormalization(name="norm1")(h))])
    # tanh-approximated GELU (TFLite fuses it to GELU): the exact form, tf.nn.gelu(approximate=False), lowers to Erfc,
    # which neither TF.js nor tf2onnx implements, and would leave the attention block unmeasured on both.
    gelu = lambda v: keras.activations.gelu(v, approximate=True)  # noqa: E731
    mlp = layers.Dense(32, activation=gelu, name="mlp_in")(layers.LayerNormalization(name="norm2")(h))
    h = layers.Add(name="residual2")([h, layers.Dense(16, name="mlp_out")(mlp)])
    h = layers.Dense(1, name="readout")(layers.LayerNormalization(name="norm3")(h))
    net = keras.Model(tokens, layers.Reshape((tasks.TOKENS,), name="group_mean")(h), name="token_attention")
    training = ctx.fit(net, x["tokens"], y["group_mean"], loss="mse", epochs=40, learning_rate=3e-3)
    return Export({"tokens": (None, tasks.TOKENS, tasks.KEYS + 1)}, lambda tokens: {"group_mean": net(tokens)}, net.variables,
                  tasks.keyed_tokens, (Score("group_mean", "group_mean", "r2"),), training)


@corpus_model("dynamic-fcn", kinds={"red_mask": "sigmoid"}, samples=160,
              description="Marks the pixels of red objects in colour scenes of any size: fully convolutional, trained and stored at 24x32.",
              covers="fully convolutional net with dynamic height and width (input [N, ?, ?, 3]): strided Conv2D, UpSampling2D "
                     "(resize to a dynamic size), skip Concatenate, per-pixel sigmoid [N, ?, ?, 1]")
def dynamic_fcn(ctx):
    keras = ctx.keras
    layers = keras.layers
    x, y = tasks.red_objects(ctx.rng, 2000)
    image = keras.Input((None, None, 3), name="image")
    near = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(image)
    far = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="down")(near)
    far = layers.Conv2D(16, 3, padding="same", activation="relu", name="context")(far)
    far = layers.UpSampling2D(2, name="up")(far)
    h = layers.Concatenate(name="skip")([near, far])
    net = keras.Model(image, layers.Conv2D(1, 1, activation="sigmoid", name="red_mask")(h), name="dynamic_fcn")
    training = ctx.fit(net, x["image"], y["red_mask"], loss="binary_crossentropy", epochs=15)
    return Export({"image": (None, None, None, 3)}, lambda image: {"red_mask": net(image)}, net.variables, tasks.red_objects,
                  (Score("red_mask", "red_mask", "mask_iou"),), training)


@corpus_model("box-regressor", kinds={"boxes": "box", "class_scores": "softmax"},
              description="Finds the one object in a 20x20 image: its box (ymin, xmin, ymax, xmax in [0, 1]) and its kind (3 classes).",
              covers="box-regression head: sigmoid boxes in [0, 1] [N, 4] beside softmax class scores [N, 3]")
def box_regressor(ctx):
    keras = ctx.keras
    layers = keras.layers
    x, y = tasks.boxed_objects(ctx.rng, 4000)
    image = keras.Input((20, 20, 1), name="image")
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv1")(image)
    h = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(24, activation="relu", name="hidden")(h)
    boxes = layers.Dense(4, activation="sigmoid", name="boxes")(h)
    scores = layers.Dense(3, activation="softmax", name="class_scores")(h)
    net = keras.Model(image, [boxes, scores], name="box_regressor")
    training = ctx.fit(net, x["image"], [y["boxes"], y["label"]], loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[20.0, 1.0],
                       epochs=30)
    serve = lambda image: dict(zip(("boxes", "class_scores"), net(image)))  # noqa: E731
    return Export({"image": (None, 20, 20, 1)}, serve, net.variables, tasks.boxed_objects,
                  (Score("boxes", "boxes", "mean_iou"), Score("class_scores", "label", "accuracy")), training)


import corpus_models_reported  # noqa: E402,F401 - registers the models shaped like the ones users reported broken

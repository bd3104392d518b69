"""Corpus models shaped like trained models users brought that broke a conversion or a measurement (issue 23):
boolean and integer tensors inside the graph, a PReLU net with dynamic height and width at odd sizes, and a
Keras 2-era HDF5 file of a grayscale classifier. Registered into corpus_models.MODELS like the others.
"""

from __future__ import annotations

import corpus_tasks as tasks
from corpus_models import Export, Score, corpus_model


@corpus_model("pulse-gates", kinds={"pulse_map": "sigmoid", "pulse_steps": "regression", "pulse_level": "regression",
                                    "first_onset": "regression"},
              description="Finds bursts in a 64-sample vibration signal: a per-step burst map, then in the graph how many steps "
                          "burst, their mean level and where the first burst starts.",
              covers="boolean and integer tensors inside the graph: a comparison (Greater, bool), tf.where (SelectV2) on it, "
                     "a cast mask summed as int32, an int64 ArgMax of the cast mask cast back to float; float inputs and outputs")
def pulse_gates(ctx):
    tf, keras = ctx.tf, ctx.keras
    layers = keras.layers
    x, y = tasks.pulses(ctx.rng, 3000)
    signal = keras.Input((tasks.PULSE_LENGTH,), name="signal")
    h = layers.Reshape((tasks.PULSE_LENGTH, 1), name="as_sequence")(signal)
    h = layers.Conv1D(16, 7, padding="same", activation="relu", name="conv1")(h)
    h = layers.Conv1D(16, 5, padding="same", activation="relu", name="conv2")(h)
    h = layers.Conv1D(1, 1, activation="sigmoid", name="burst")(h)
    net = keras.Model(signal, layers.Reshape((tasks.PULSE_LENGTH,), name="pulse_map")(h), name="pulse_gates")
    training = ctx.fit(net, x["signal"], y["pulse_map"], loss="binary_crossentropy", epochs=15)

    def serve(signal):
        probability = net(signal)
        active = probability > 0.5  # bool
        steps = tf.reduce_sum(tf.cast(active, tf.int32), axis=1, keepdims=True)  # int32
        magnitude = tf.where(active, tf.abs(signal), tf.zeros_like(signal))
        level = tf.reduce_sum(magnitude, axis=1, keepdims=True) / tf.cast(tf.maximum(steps, 1), tf.float32)
        onset = tf.argmax(tf.cast(active, tf.int32), axis=1, output_type=tf.int64)  # int64: the first active step (0: none)
        return {"pulse_map": probability, "pulse_steps": tf.cast(steps, tf.float32), "pulse_level": level,
                "first_onset": tf.cast(onset, tf.float32)[:, None]}

    return Export({"signal": (None, tasks.PULSE_LENGTH)}, serve, net.variables, tasks.pulses,
                  (Score("pulse_map", "pulse_map", "mask_iou"), Score("pulse_steps", "pulse_steps", "r2"),
                   Score("pulse_level", "pulse_level", "r2"), Score("first_onset", "first_onset", "r2")), training)


@corpus_model("stripes-prelu", kinds={"stripe_probabilities": "softmax"}, task="classification", samples=160,
              description="Tells horizontal, vertical and diagonal stripes and checks apart in colour images of any size: "
                          "a PReLU conv net, trained and stored at 23x31.",
              covers="PReLU (alpha shared over height and width) conv net with dynamic height and width (input [N, ?, ?, 3]) "
                     "and odd sizes through strided pooling: 23x31, MaxPool 'same' stride 2 to 12x16, AveragePooling 'valid' "
                     "stride 2 to 5x7, GAP, softmax")
def stripes_prelu(ctx):
    keras = ctx.keras
    layers = keras.layers
    x, y = tasks.stripes(ctx.rng, 3000)
    image = keras.Input((None, None, 3), name="image")
    h = layers.Conv2D(8, 3, padding="same", name="conv1")(image)
    h = layers.PReLU(shared_axes=[1, 2], name="prelu1")(h)  # one alpha per channel: any height and width
    h = layers.MaxPooling2D(2, strides=2, padding="same", name="pool1")(h)  # odd sizes round up: 23x31 -> 12x16
    h = layers.Conv2D(16, 3, padding="same", name="conv2")(h)
    h = layers.PReLU(shared_axes=[1, 2], name="prelu2")(h)
    h = layers.AveragePooling2D(3, strides=2, padding="valid", name="pool2")(h)  # and down: 12x16 -> 5x7
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    net = keras.Model(image, layers.Dense(len(tasks.STRIPE_KINDS), activation="softmax", name="probabilities")(h), name="stripes_prelu")
    training = ctx.fit(net, x["image"], y["label"], loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=12)
    return Export({"image": (None, None, None, 3)}, lambda image: {"stripe_probabilities": net(image)}, net.variables, tasks.stripes,
                  (Score("stripe_probabilities", "label", "accuracy"),), training)


@corpus_model("faces-hdf5", kinds={"expression": "softmax"}, task="classification",
              description="Tells four expressions of grayscale cartoon faces apart (neutral, happy, sad, surprised), "
                          "shipped as a Keras 2-era model.hdf5.",
              covers="legacy HDF5 file (model_config in its attributes, Sequential config as a bare layer list, keras_version "
                     "2.0.8) with a .hdf5 suffix, loaded through the local source; one grayscale channel [N, 24, 24, 1]; "
                     "Conv2D, MaxPool2D, Dropout, Dense softmax")
def faces_hdf5(ctx):
    keras = ctx.keras
    layers = keras.layers
    x, y = tasks.faces(ctx.rng, 3000)
    net = keras.Sequential([
        keras.Input((24, 24, 1), name="face"),
        layers.Conv2D(8, 3, activation="relu", name="conv1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(16, 3, activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Dropout(0.25, name="dropout"),
        layers.Flatten(name="flatten"),
        layers.Dense(len(tasks.EXPRESSIONS), activation="softmax", name="expression"),
    ], name="face_expressions")
    training = ctx.fit(net, x["face"], y["label"], loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=12)
    return Export({"face": (None, 24, 24, 1)}, lambda face: {"expression": net(face)}, net.variables, tasks.faces,
                  (Score("expression", "label", "accuracy"),), training, keras_file=net)

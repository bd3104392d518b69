"""The usual way, for comparison: a plain TFLiteConverter script, as a team writes it by hand.

    python bench/baseline_tflite.py SAVED_MODEL CALIBRATION.npz OUT_DIR

Writes phone.tflite (float16) and microcontroller.tflite (full-integer int8, int8 I/O, batch 1).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf

saved_model, calibration, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)

converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_types = [tf.float16]
open(os.path.join(out, "phone.tflite"), "wb").write(converter.convert())

# Microcontrollers need a static batch of 1: re-trace the serving signature with a fixed input shape.
loaded = tf.saved_model.load(saved_model)
serving = loaded.signatures["serving_default"]
specs = {name: tf.TensorSpec([1, *spec.shape[1:]], spec.dtype, name=name) for name, spec in serving.structured_input_signature[1].items()}
fixed = tf.function(lambda **inputs: serving(**inputs)).get_concrete_function(**specs)
samples = np.load(calibration)
name = next(iter(specs))


def representative_dataset():
    for sample in samples[samples.files[0]]:
        yield {name: sample[None].astype(np.float32)}


converter = tf.lite.TFLiteConverter.from_concrete_functions([fixed], loaded)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8
open(os.path.join(out, "microcontroller.tflite"), "wb").write(converter.convert())

"""Quantisation beyond one converter call: measuring where int8 loses accuracy, searching for a mix of int8 and float
ops, and the loop that converts, checks parity and retries, beside the pipeline.

- measure.py: per-layer error and the error traced to its source (inputs/outputs, weights, activations), on LiteRT
  against the float32 .tflite;
- search.py: the bisection over ops ranked by measured effect, and the layer names users give;
- advice.py: what to do, read off the traced figures;
- loop.py: convert, check, trace, fall back (orchestration); auto.py: `--quantize auto`'s candidates.

The artifacts themselves come from converter/ (tflite.py, tflite_selective.py for mixes, onnx_quantize.py), and what an
artifact computes in is read back by formats/tflite/precision.py.
"""

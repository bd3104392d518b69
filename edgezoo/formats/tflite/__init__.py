"""TFLite: convert.py (TFLiteConverter: float32, float16, dynamic-range int8, full integer, int16x8) with its routes
(frozen.py) and tools (flatbuffer.py reads a .tflite without TensorFlow; precision.py says what each op computes in;
repack.py rewrites buffers; selective.py quantises op by op with ai-edge-quantizer), metadata.py, inspect.py, the
runners run_litert.py and run_tflm.py (TFLM in a child process, tflm_child.py), the microcontroller's kernel tables
(tflm_ops.py) and C sources (c_array.py), and placement.py / placement_tflm.py.
"""

from edgezoo.formats import public_names

# What other folders use, by the module that defines it (the quantisation loop, the target checks, device bundles, latency).
PUBLIC = {
    "precision": "precision", "selective": "selective", "frozen": "frozen", "tflm_ops": "tflm_ops",
    "layer_name": "precision", "op_precisions": "precision", "INT8": "precision", "INT16": "precision",
    "new_converter": "convert", "set_inputs": "convert", "quantize_input": "convert", "dequantize_output": "convert",
    "OpNode": "flatbuffer", "read_flatbuffer": "flatbuffer", "builtin_op_names": "flatbuffer",
    "write_c_sources": "c_array", "arena_with_margin": "c_array",
    "probe": "litert_probe", "run_tflm": "run_tflm",
}
__getattr__ = public_names(__name__, PUBLIC)

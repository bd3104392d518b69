"""ONNX: convert.py (tf2onnx), quantize.py (ONNX Runtime's static and dynamic int8), metadata.py, inspect.py, the runner
run_onnxruntime.py and placement.py."""

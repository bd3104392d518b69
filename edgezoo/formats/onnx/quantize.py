"""int8 ONNX with ONNX Runtime's quantisation tools, from the float32 model tf2onnx made.

- int8: static quantisation in the QDQ format (QuantizeLinear/DequantizeLinear pairs around each quantised op, which
  every ONNX Runtime execution provider reads), int8 activations calibrated by min/max on edgezoo's calibration split,
  int8 weights per channel.
- dynamic-int8: int8 weights (per channel), activations quantised by the runtime as it goes (ConvInteger,
  MatMulInteger): no calibration data needed.

ONNX shape inference and ONNX Runtime's graph optimisation run first (quant_pre_process), as ONNX Runtime recommends,
so that the ops quantised are the ones the runtime will execute (its symbolic shape inference is skipped: it needs
sympy, which the stack does not install, and tf2onnx's shapes are already inferred).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from edgezoo import _tf
from edgezoo.formats.base import Quantization, first_line
from edgezoo.errors import CalibrationDataError, ConversionError


@contextlib.contextmanager
def _quiet():
    logger = logging.getLogger()
    level = logger.level
    if not _tf.is_verbose():
        logger.setLevel(logging.ERROR)  # "Please consider to run pre-processing before quantization", per-op notes
    try:
        with _tf.quiet_native_output():
            yield
    finally:
        logger.setLevel(level)


class _Reader:
    """The calibration split one sample at a time, keyed by the model's input names (the signature's)."""

    def __init__(self, calibration):
        self._samples = iter(calibration.representative_samples())

    def get_next(self):
        return next(self._samples, None)


def quantize(float_model: Path, output: Path, quantization: Quantization, calibration) -> None:
    """Write the int8 (static QDQ) or dynamic-int8 model of `float_model` to `output`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = output.with_name("prepared.onnx")
    try:
        with _quiet():
            quant_pre_process(str(float_model), str(prepared), skip_symbolic_shape=True)  # symbolic inference needs sympy
            if quantization is Quantization.INT8:
                if calibration is None:
                    raise CalibrationDataError("int8 ONNX needs calibration data; pass --calibration.")
                quantize_static(str(prepared), str(output), _Reader(calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
            else:
                quantize_dynamic(str(prepared), str(output), per_channel=True, weight_type=QuantType.QInt8)
    except CalibrationDataError:
        raise
    except Exception as exc:  # onnxruntime.quantization raises ValueError, KeyError, RuntimeError on graphs it cannot handle
        raise ConversionError(f"ONNX Runtime could not quantise the model ({quantization.value}): {type(exc).__name__}: "
                              f"{first_line(exc)}") from exc
    finally:
        prepared.unlink(missing_ok=True)

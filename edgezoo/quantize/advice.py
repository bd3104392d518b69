"""What to do about a quantised artifact's error, read off the traced figures (measure.Trace), never guessed."""

from __future__ import annotations

from edgezoo.formats.base import Quantization
from edgezoo.quantize.measure import SNR_CAP_DB, snr_db

DOMINANT = 0.5  # a source with at least this share of the noise power is what to act on
SUSPECTS = 3


def _db(nsr: float) -> str:
    return f"{snr_db(nsr):.1f} dB"


def _alone(value: float) -> str:
    return "NaN or Inf outputs" if value <= -SNR_CAP_DB else f"{value:.1f} dB"


def advise(trace, *, quantization: Quantization, integer_io: bool, fallback_allowed: bool, calibration, passed: bool,
           float_end_failed: bool = False) -> list[str]:
    """Advice in order of weight; empty when parity passed. `float_end_failed`: the fallback kept every op in float and
    parity still failed, so what is left is the input/output rounding."""
    if passed:
        return []
    advice = []
    shares = trace.shares()
    output = trace.worst_output
    if float_end_failed:
        worst_io = min(trace.io, key=lambda name: snr_db(trace.io[name]))
        advice.append(f"with every op in float parity still fails: what is left is rounding the inputs and outputs, which alone "
                      f"costs {worst_io} {_db(trace.io[worst_io])}; " + ("use float input and output (a profile with integer_io = false, "
                      "such as phone instead of phone-int8)." if integer_io else "use int16x8 or a float quantisation."))
    if shares["io"] >= DOMINANT and not float_end_failed:
        cost = f"rounding the inputs and outputs alone costs {output} {_db(trace.io[output])}"
        if integer_io:
            advice.append(f"{cost} ({shares['io']:.0%} of the error): use float input and output (a profile with "
                          "integer_io = false, such as phone instead of phone-int8).")
        else:
            advice.append(f"{cost} ({shares['io']:.0%} of the error): the inputs or outputs need more than 8 bits; use int16x8.")
    if shares["weights"] >= DOMINANT:
        advice.append(f"int8 weights alone cost {output} {_db(trace.weights[output])} ({shares['weights']:.0%} of the error): "
                      "keep the layers with the most weights in float, or use float16 (int16x8 keeps int8 weights).")
    if (shares["activations"] >= DOMINANT or not advice) and not float_end_failed:
        share = f"the activations carry {shares['activations']:.0%} of the error"
        if trace.layers:
            worst = [layer for layer in trace.layers if layer.solo_snr_db is not None][:SUSPECTS] or list(trace.layers[:SUSPECTS])
            named = ", ".join(f"{layer.layer} ({layer.op}" + (f", alone in int8: {_alone(layer.solo_snr_db)}" if layer.solo_snr_db is not None
                                                                else f", own error {layer.added_db:.1f} dB") + ")" for layer in worst)
            remedies = []
            if fallback_allowed:
                remedies.append("keep them in float (" + " ".join(f"--keep-float {layer.layer}" for layer in worst) + ")")
            if quantization is Quantization.INT8:
                remedies.append("use int16x8 (16-bit activations)")
            advice.append(f"{share}; the worst layers are {named}" + (f": {' or '.join(remedies)}." if remedies else "."))
        else:
            advice.append(f"{share}; --explain-quantization measures which layers" +
                          (", and int16x8 keeps 16-bit activations." if quantization is Quantization.INT8 else "."))
    if trace.calibration_settled is False:
        tensor, moved = next(iter(trace.range_moved.items()))
        advice.append(f"the calibration ranges had not settled: {tensor.split(';')[0]} still widened by {moved:.0%} over the last "
                      "tenth of the samples; give more calibration samples.")
    if calibration is not None and calibration.origin == "synthetic":
        advice.append("the model was calibrated on random inputs: give real calibration data with --calibration.")
    elif calibration is not None and calibration.num_calibration < 100 and shares["activations"] >= DOMINANT:
        advice.append(f"only {calibration.num_calibration} calibration samples: more give steadier activation ranges.")
    return advice

"""Run the original and the artifact on the same inputs and compare them."""

from edgezoo.validate.parity import OutputParity, ParityReport, check_parity, compare_outputs

__all__ = ["OutputParity", "ParityReport", "check_parity", "compare_outputs"]

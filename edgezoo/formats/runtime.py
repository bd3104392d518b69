"""What the runners share (formats/<format>/run_<runtime>.py). Each runner exposes `RUNTIME` and
`run(artifact, inputs: dict[str, ndarray]) -> dict[str, ndarray]`, outputs keyed by the signature's output names;
edgezoo.formats.RUNTIMES registers them.
"""

from __future__ import annotations

import numpy as np

from edgezoo.errors import CalibrationDataError

def pad_batch(chunk: np.ndarray, batch: int | None) -> np.ndarray:
    """A last, short chunk repeated up to a static batch size; the extra rows are dropped from the outputs."""
    if batch is None or len(chunk) == batch:
        return chunk
    return np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])


def check_sample_shape(artifact_path, name: str, shape, array: np.ndarray) -> None:
    """The inputs' samples must fit the artifact's static dimensions past the batch (`shape`: None or -1 where dynamic); the
    runner pads or splits the batch itself. A runtime would reject the rest, or silently resize its input (LiteRT)."""
    rest = tuple(None if d is None or d == -1 else int(d) for d in shape)[1:]
    sample = tuple(array.shape[1:])
    if len(rest) != len(sample) or any(d is not None and d != got for d, got in zip(rest, sample)):
        shown = ", ".join("?" if d is None else str(d) for d in (None, *rest))
        raise CalibrationDataError(
            f"{artifact_path}: input '{name}' takes [{shown}] (batch first), but the inputs given have samples of shape "
            f"{list(sample)}. Give inputs of the size the artifact was made for."
        )

"""Open a .tflite from elsewhere in a child process first: LiteRT trusts the flatbuffer it is given, and a damaged
or hostile one can crash the process that loads it (a segmentation fault found by tests/fuzz, no Python exception).

`probe(path)` runs this file as a script (it imports no edgezoo module, so it starts in about 0.3 s): the child
builds the interpreter, allocates its tensors and runs the signature once on zeros. A crash or an error there is a
CorruptModelError (exit 2) for the parent, which loads the model itself only after the child survived it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

TIMEOUT_SECONDS = 300
ERROR_MARKER = "edgezoo-probe-error:"


def probe(path: Path) -> None:
    from edgezoo.errors import CorruptModelError

    try:
        done = subprocess.run([sys.executable, str(Path(__file__)), str(path)], capture_output=True, text=True, errors="replace",
                              timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise CorruptModelError(f"LiteRT did not open {path} within {TIMEOUT_SECONDS} s; the file may be damaged.") from None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise CorruptModelError(f"LiteRT crashed ({name}) opening {path}: the file is damaged or malformed. (It was opened in a "
                                "child process, so only that check stopped.)")
    if done.returncode != 0:
        said = [line[len(ERROR_MARKER):].strip() for line in done.stderr.splitlines() if line.startswith(ERROR_MARKER)]
        detail = said[0] if said else (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise CorruptModelError(f"{path} is not a .tflite model LiteRT can open with a signature: {detail}")


def _main(path: str) -> int:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=path)
        runner = interpreter.get_signature_runner()
        feed = {name: np.zeros([max(1, int(d)) for d in detail["shape"]], detail["dtype"])
                for name, detail in runner.get_input_details().items()}
        runner(**feed)
    except Exception as exc:  # the parent turns it into CorruptModelError
        print(f"{ERROR_MARKER} {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))

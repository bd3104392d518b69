"""The one place TensorFlow is imported from, so the environment is set before its first import.

tf-keras (Keras 2) is what tensorflow-hub, tensorflow-model-optimization and tensorflowjs need,
so TF_USE_LEGACY_KERAS must be set before TensorFlow loads. Logs are quiet unless verbose.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings

_VERBOSE = False


def set_verbose(verbose: bool) -> None:
    global _VERBOSE
    _VERBOSE = verbose


def is_verbose() -> bool:
    return _VERBOSE


def configure_environment() -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if not _VERBOSE:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def tf():
    """Import TensorFlow with edgezoo's environment; call this instead of `import tensorflow`."""
    configure_environment()
    # TensorFlow's GCE cluster resolver imports googleapiclient when it is installed (the Model Garden brings it), and
    # google.api_core then warns about the Python version at every TensorFlow import.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core")
    with quiet_native_output():
        import tensorflow

    if not _VERBOSE:
        tensorflow.get_logger().setLevel(logging.ERROR)
        tensorflow.autograph.set_verbosity(0)
        logging.getLogger("absl").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=r"(tensorflow|tf_keras|keras|tf2onnx|tensorflowjs)")
    return tensorflow


def tf_keras():
    tf()
    import tf_keras

    return tf_keras


@contextlib.contextmanager
def quiet_native_output():
    """Silence C++ log lines written straight to file descriptor 2 (MLIR, absl, XNNPACK).

    Python-level errors still propagate; the captured text is kept so a failure can quote it.
    """
    if _VERBOSE:
        yield _CapturedLog(None)
        return
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        log = _CapturedLog(capture)
        try:
            yield log
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            log.freeze()


class _CapturedLog:
    def __init__(self, capture):
        self._capture = capture
        self.text = ""

    def freeze(self) -> None:
        if self._capture is not None:
            self._capture.seek(0)
            self.text = self._capture.read().decode("utf-8", "replace")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.text.strip().splitlines()[-lines:])

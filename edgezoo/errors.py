"""One error hierarchy; each kind carries the CLI exit code DESIGN.md assigns to it."""

from __future__ import annotations


class EdgezooError(Exception):
    """Base of every error edgezoo raises on purpose. Messages say what, where, and what to do."""

    exit_code = 2


class UsageError(EdgezooError):
    """Bad arguments or options."""


class SourceNotFoundError(EdgezooError):
    """A model source string that no zoo source can resolve."""


class UnsafeModelError(EdgezooError):
    """A model that would run arbitrary code when loaded."""


class CorruptModelError(EdgezooError):
    """A model file that exists but cannot be read."""


class DownloadError(SourceNotFoundError):
    """A model file or hub module that could not be fetched (network, mirror, or missing while offline)."""


class ChecksumError(DownloadError):
    """A downloaded file whose hash differs from the one its publisher gives."""


class CalibrationDataError(EdgezooError):
    """Calibration or validation data that does not fit the model."""


class OutputExistsError(EdgezooError):
    """An output folder that is already there (use --force)."""


class OutputNotWritableError(EdgezooError):
    """An output folder that cannot be created or written."""


class TargetProfileError(EdgezooError):
    """A target profile file that is missing or malformed."""


class TargetConstraintError(EdgezooError):
    """The model cannot meet the target: ops, size or memory."""

    exit_code = 3


class ConversionError(EdgezooError):
    """A converter or runtime failed."""

    exit_code = 4


class DiskFullError(ConversionError):
    """A write failed for want of room: no space left on the device, a quota, or a file-size limit (RLIMIT_FSIZE)."""


class RuntimeFailure(ConversionError):
    """A runtime could not load or run an artifact."""

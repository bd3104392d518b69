"""`edgezoo build MATRIX.toml`: models x targets x option variants as data (schema.py), every cell a job on an
executor (edgezoo/jobs/), resumable by content key (keys.py), summarised in OUT/build-report.json and .html (report.py)."""

from edgezoo.matrix.schema import Matrix, load_matrix, parse_matrix
from edgezoo.matrix.run import BuildOptions, BuildResult, Cell, build

__all__ = ["BuildOptions", "BuildResult", "Cell", "Matrix", "build", "load_matrix", "parse_matrix"]

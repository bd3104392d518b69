"""The corpus of structurally diverse models (tests/corpus/<name>/, built by scripts/build_corpus.py, see docs/corpus.md).

Each folder holds `saved_model/` (one `serving_default` signature, named inputs and dict outputs), or a user's model
file (`model.hdf5`: a Keras 2-era HDF5 file, loaded through edgezoo's local source as a user would give it), `data.npz`
(float32 inputs named after the signature's inputs, from the training distribution; edgezoo's --calibration
splits them), `targets.npz` (the true answers for those inputs) and `model.json` (what the model is, what it
covers, its task, training figures, and the scores it reaches on data.npz).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO / "tests" / "corpus"
BUILTIN_TARGETS = ("phone", "phone-int8", "microcontroller", "browser", "onnx")
# Matrix columns beyond the built-in targets: column -> (target, convert options). phone-auto is `--target phone
# --quantize auto`; phone-int8-explain is `--target phone-int8 --explain-quantization`, which runs every int8 diagnostic
# (tracing, per-layer effects, calibration drift) even when parity passes, as a failing int8 model would. They run on
# AUTO_MODELS only, the models added for what broke in issue 23, to keep the matrix quick.
EXTRA_COLUMNS = {"phone-auto": ("phone", {"quantize": "auto"}),
                 "phone-int8-explain": ("phone-int8", {"explain_quantization": True})}
AUTO_MODELS = ("faces-hdf5", "pulse-gates", "stripes-prelu")
MODEL_FILES = ("model.hdf5", "model.h5")  # what a folder may hold instead of saved_model/
HELDOUT = 40  # held-out inputs per conversion: enough for the metrics, few enough to keep the matrix quick


@dataclass(frozen=True)
class CorpusModel:
    name: str
    folder: Path

    @property
    def saved_model_dir(self) -> Path:
        return self.folder / "saved_model"

    @property
    def model_path(self) -> Path:
        """What edgezoo.load is given: the SavedModel folder, else the model file the folder holds."""
        if self.saved_model_dir.is_dir():
            return self.saved_model_dir
        return next((self.folder / f for f in MODEL_FILES if (self.folder / f).is_file()), self.saved_model_dir)

    @property
    def data_path(self) -> Path:
        return self.folder / "data.npz"

    @property
    def targets_path(self) -> Path:
        return self.folder / "targets.npz"

    @property
    def meta(self) -> dict:
        return json.loads((self.folder / "model.json").read_text())

    @property
    def num_samples(self) -> int:
        with np.load(self.data_path) as data:
            return len(data[data.files[0]])

    @property
    def heldout_fraction(self) -> float:
        """The share of data.npz that gives about HELDOUT held-out inputs."""
        return HELDOUT / self.num_samples

    def data(self) -> dict[str, np.ndarray]:
        with np.load(self.data_path) as data:
            return {name: data[name] for name in data.files}

    def targets(self) -> dict[str, np.ndarray]:
        with np.load(self.targets_path) as data:
            return {name: data[name] for name in data.files}

    def load(self):
        """The model as a LoadedModel, named after its folder, with the task its model.json states.

        edgezoo.load names a SavedModel folder after itself ("saved_model") and guesses the task from the outputs
        (any one [N, K] output looks like a classifier: an embedding, a multi-label head); the corpus says.
        """
        import edgezoo

        model = edgezoo.load(str(self.model_path))
        return dataclasses.replace(model, name=self.name, task=self.meta["task"])


def names() -> list[str]:
    return sorted(path.parent.name for path in CORPUS_DIR.glob("*/model.json"))


def columns(name: str) -> tuple[str, ...]:
    """The matrix columns a model is converted for: every built-in target, and the extra columns for AUTO_MODELS."""
    return BUILTIN_TARGETS + (tuple(EXTRA_COLUMNS) if name in AUTO_MODELS else ())


def corpus_model(name: str) -> CorpusModel:
    folder = CORPUS_DIR / name
    if not (folder / "model.json").is_file():
        raise KeyError(f"no corpus model '{name}' (known: {', '.join(names())})")
    return CorpusModel(name, folder)


@lru_cache(maxsize=None)
def loaded(name: str):
    """A corpus model's LoadedModel, once per process."""
    return corpus_model(name).load()


# --- scores of a model's outputs against the true answers (model.json "evaluation") ----------------------------


SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {}


def score(name: str):
    def decorator(fn):
        SCORES[name] = fn
        return fn

    return decorator


@score("accuracy")
def accuracy(output, target):
    """Share of samples whose most probable class is the true label."""
    return float(np.mean(np.argmax(output, axis=-1) == target))


@score("binary_accuracy")
def binary_accuracy(output, target):
    """Share of sigmoid outputs on the right side of 0.5."""
    return float(np.mean((output > 0.5) == (target > 0.5)))


@score("r2")
def r2(output, target):
    """Coefficient of determination over every value: 1 is perfect, 0 is predicting the mean."""
    target = target.astype(np.float64)
    return float(1.0 - np.sum((output - target) ** 2) / np.sum((target - target.mean()) ** 2))


@score("mean_iou")
def mean_iou(output, target):
    """Mean intersection over union of (ymin, xmin, ymax, xmax) boxes."""
    low = np.maximum(output[:, :2], target[:, :2])
    high = np.minimum(output[:, 2:], target[:, 2:])
    intersection = np.prod(np.clip(high - low, 0, None), axis=-1)
    area = lambda b: np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)  # noqa: E731
    return float(np.mean(intersection / (area(output) + area(target) - intersection)))


@score("centroid_accuracy")
def centroid_accuracy(output, target):
    """Embeddings: share of samples whose nearest class centroid (by cosine, centroids of these samples) is their own class."""
    classes = np.unique(target)
    centroids = np.stack([output[target == c].mean(axis=0) for c in classes])
    centroids /= np.linalg.norm(centroids, axis=-1, keepdims=True)
    return float(np.mean(classes[np.argmax(output @ centroids.T, axis=-1)] == target))


@score("mask_iou")
def mask_iou(output, target):
    """Intersection over union of a thresholded sigmoid map (a mask, a note map) with the true one, over every element."""
    predicted, truth = output > 0.5, target > 0.5
    return float(np.sum(predicted & truth) / max(1, np.sum(predicted | truth)))


def evaluate(entries: list[dict], outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> list[dict]:
    """Each model.json evaluation entry ({output, target, score, ...}) with its value measured on these outputs."""
    return [{**entry, "value": SCORES[entry["score"]](outputs[entry["output"]], targets[entry["target"]])} for entry in entries]


# --- one cell of the corpus matrix: a model converted for one target through the public API --------------------

# "crash": the process died (LiteRT and TFLM abort on some models); only scripts/corpus_matrix.py, which runs each
# model in a child process, can record it.
VERDICTS = ("pass", "parity-fail", "refused", "error", "crash")
VERDICT_OF_EXIT = {0: "pass", 1: "parity-fail", 3: "refused"}  # any other exit code (2, 4) is an error


@dataclass(frozen=True)
class Cell:
    model: str
    target: str
    verdict: str  # one of VERDICTS
    exit_code: int  # what `edgezoo convert` exits with: 0, 1, 2, 3 or 4
    reason: str | None = None  # the error's first line, or the parity summary of a parity failure
    size_bytes: int | None = None
    outputs: dict = dataclasses.field(default_factory=dict)  # output name -> every metric measured
    details: dict = dataclasses.field(default_factory=dict)  # quantisation, runtime, float fallback, arena
    seconds: float = 0.0

    @property
    def non_finite(self) -> bool:
        """Whether some output holds NaN or Inf (the SNR metric then reads 300 dB: min(300, nan) is 300)."""
        return bool(self.details.get("non_finite_outputs"))

    @property
    def worst_snr_db(self) -> float | None:
        if self.non_finite:
            return float("nan")
        values = [m["snr_db"] for m in self.outputs.values() if m.get("snr_db") is not None]
        return min(values) if values else None

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "worst_snr_db": self.worst_snr_db, "non_finite": self.non_finite}


def heldout_inputs(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The held-out inputs edgezoo's --calibration split keeps for the parity check (the same seed and fraction)."""
    from edgezoo.calibration import CalibrationSettings, load_calibration

    entry = corpus_model(name)
    settings = CalibrationSettings(seed=seed, heldout_fraction=entry.heldout_fraction)
    return load_calibration(entry.data_path, loaded(name), settings).heldout


@lru_cache(maxsize=None)
def reference_outputs(name: str) -> dict[str, np.ndarray]:
    """The original's outputs in TensorFlow on those held-out inputs, once per process."""
    from edgezoo.zoo.reference import run_reference

    return run_reference(loaded(name), heldout_inputs(name))


def scale_free(metrics: dict, reference: np.ndarray) -> dict:
    """Figures relative to the reference output's range (peak to peak over the held-out set) beside the absolute ones."""
    spread = float(np.ptp(reference.astype(np.float64)))
    extra = {"reference_min": float(reference.min()), "reference_max": float(reference.max())}
    for name in ("max_abs_error", "mean_abs_error", "rmse"):
        if metrics.get(name) is not None:
            extra[f"{name}_over_range"] = metrics[name] / spread if spread > 0 else None
    return {**metrics, **extra}


def _portable(text: str, out_dir: Path) -> str:
    """A reason that reads the same whatever the scratch folder and the random suffix of edgezoo's staging folder."""
    return re.sub(r"/\.[^/\s]+\.partial-[^/\s]+/", "/STAGING/", text.replace(str(out_dir), "OUT"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def convert_cell(name: str, target: str, out_dir: Path, **options) -> tuple[Cell, object]:
    """Convert one corpus model for one target with `edgezoo.convert` (calibration: its data.npz, about HELDOUT held out).

    `target` is a target or a column of EXTRA_COLUMNS (its target with its options; the Cell keeps the column's name).

    Returns the cell and the TargetResult (None when the conversion raised). Any exception becomes a verdict, as the
    CLI would turn it into an exit code: EdgezooError by its code, anything else is an internal error (exit 4).
    """
    import time

    import edgezoo
    from edgezoo.errors import EdgezooError

    entry = corpus_model(name)
    column, (target, extra) = target, EXTRA_COLUMNS.get(target, (target, {}))
    options = {"calibration": entry.data_path, "heldout_fraction": entry.heldout_fraction, "force": True, **extra, **options}
    where = lambda text: _portable(text, out_dir)  # noqa: E731
    start = time.perf_counter()
    try:
        result = edgezoo.convert(loaded(name), target=target, out_dir=out_dir, **options)
    except EdgezooError as exc:
        seconds = time.perf_counter() - start
        return Cell(name, column, VERDICT_OF_EXIT.get(exc.exit_code, "error"), exc.exit_code, where(_first_line(exc)), seconds=seconds), None
    except Exception as exc:  # noqa: BLE001 - an unwrapped failure is what the CLI calls an internal error
        seconds = time.perf_counter() - start
        return Cell(name, column, "error", 4, where(f"internal error: {type(exc).__name__}: {_first_line(exc)}"), seconds=seconds), None
    seconds = time.perf_counter() - start
    done = result.targets[0]
    reference = reference_outputs(name)
    outputs = {o.name: scale_free(o.metrics, reference[o.name]) if o.name in reference and o.metrics else dict(o.metrics)
               for o in done.parity.outputs}
    fallback = done.report.get("float_fallback") or {}
    details = {
        "quantization": done.artifact.quantization.value,
        "runtime": done.parity.runtime,
        "format": done.artifact.format,
        "num_heldout": done.parity.num_samples,
        "ops": list(done.artifact.ops),
        "arena_bytes": done.artifact.details.get("arena_bytes"),
        "float_fallback": {"outcome": fallback.get("outcome"), "kept_float": fallback.get("kept_float"),
                           "steps": len(fallback.get("steps", ())), "message": fallback.get("message")} if fallback else None,
        "violations": {o.name: list(o.violations) for o in done.parity.outputs if o.violations},
        "runtime_error": where(done.parity.error) if done.parity.error else None,
        "non_finite_outputs": [o.name for o in done.parity.outputs if not math.isfinite(o.metrics.get("max_abs_error", 0.0))],
    }
    verdict = "pass" if done.passed else VERDICT_OF_EXIT.get(done.exit_code, "error")  # a runtime that cannot run it: exit 4
    reason = None if done.passed else where(done.parity.summary())
    return Cell(name, column, verdict, done.exit_code, reason, done.artifact.size_bytes, outputs, details, seconds), done


# --- docs/corpus.md: sections between markers, and the expected-verdict table the matrix test checks -------------

CORPUS_DOC = REPO / "docs" / "corpus.md"


def rewrite_section(text: str, marker: str, content: str) -> str:
    """`text` with what lies between <!-- marker:start --> and <!-- marker:end --> replaced by `content`."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"{CORPUS_DOC.name} has no '{start}' ... '{end}' section")
    return f"{head}{start}\n{content.strip()}\n{end}{rest.partition(end)[2]}"


def section(text: str, marker: str) -> str:
    return text.partition(f"<!-- {marker}:start -->")[2].partition(f"<!-- {marker}:end -->")[0]


KEY_SEPARATOR = " … "


def reason_key(cell: Cell) -> str:
    """A short, stable part of a cell's reason for the expected table: the metric a parity failure violates first;
    else three stretches of the error's first line without what changes from run to run (digits, quotes, brackets,
    paths, the model's name), joined by KEY_SEPARATOR."""
    if cell.verdict == "pass":
        return ""
    if cell.verdict == "parity-fail" and cell.details.get("violations"):
        words = next(iter(cell.details["violations"].values()))[0].split()
        while words and any(c.isdigit() for c in words[0]):  # "480 non-finite values ..."
            words.pop(0)
        return " ".join(words[:1] if "_" in words[0] or words[0] == "cosine" else words[:2])
    text = re.sub(r"\S*/\S*", "\0", (cell.reason or "").splitlines()[0].replace(cell.model, "\0"))
    pieces = [piece.strip(" .,;:[]-") for piece in re.split(r"[0-9'\"`()\0]+", text)]
    pieces = [piece if len(piece) <= 60 else piece[:60].rsplit(" ", 1)[0] for piece in pieces if len(piece.split()) >= 2]
    return KEY_SEPARATOR.join(pieces[:3])


def reason_matches(reason: str | None, key: str) -> bool:
    """Whether every stretch of the key occurs in the reason, in order."""
    position = 0
    for piece in filter(None, key.split(KEY_SEPARATOR)):
        found = (reason or "").find(piece, position)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def mismatch(cell: Cell, expected: str, reason: str) -> str | None:
    """None when the cell has the expected verdict and its reason contains `reason`; else what differs, naming the cell."""
    if cell.verdict == expected and reason_matches(cell.reason, reason):
        return None
    shown = f" containing {reason!r}" if reason else ""
    return (f"{cell.model} x {cell.target}: expected {expected}{shown}, got {cell.verdict} (exit {cell.exit_code}): {cell.reason}. "
            "If the change is intended, run scripts/corpus_matrix.py --write-expected and review docs/corpus.md.")


def expected_table(cells: list[Cell]) -> str:
    rows = ["| model | target | expected | reason contains |", "| --- | --- | --- | --- |"]
    rows += [f"| {c.model} | {c.target} | {c.verdict} | {reason_key(c).replace('|', '/')} |" for c in cells]
    return "\n".join(rows)


def read_expected(text: str | None = None) -> dict[tuple[str, str], tuple[str, str]]:
    """(model, target) -> (expected verdict, reason substring) from docs/corpus.md's expected table."""
    text = CORPUS_DOC.read_text() if text is None else text
    expected = {}
    for line in section(text, "expected").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("model", "---"):
            continue
        model, target, verdict, reason = cells
        if verdict not in VERDICTS:
            raise ValueError(f"{CORPUS_DOC.name}: expected verdict '{verdict}' of {model} x {target} is none of {', '.join(VERDICTS)}")
        expected[(model, target)] = (verdict, reason)
    return expected

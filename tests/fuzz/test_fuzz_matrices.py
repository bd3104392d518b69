"""Fuzzed build matrices (`edgezoo build MATRIX.toml`): TOML text and bytes, and tables near the schema (models,
targets, variants, options, paths that climb out). Every one must be read into a Matrix or refused (exit 2),
naming where the problem is; reading a matrix never loads a model or writes a file."""

from __future__ import annotations

import copy

from hypothesis import given, strategies as st

from edgezoo.matrix.schema import MODEL_KEYS, OPTION_KEYS, TOP_KEYS, load_matrix, parse_matrix
from tests.fuzz.harness import Tally, examples
from tests.fuzz.test_fuzz_profiles import QUANTIZATIONS, scalars, toml_value, values

NAMES = st.sampled_from(["digits-cnn", "keras:MobileNetV2", "hub:x", "../../etc/passwd", "/dev/null", "a b", "", ".", "int8",
                         "phone", "onnx", "mcu.toml", "default", "x" * 300])
options = st.dictionaries(st.sampled_from([*OPTION_KEYS, "calibraton", ""]),
                          st.sampled_from(QUANTIZATIONS + ["auto", "int4"]) | scalars | values, max_size=3) | values
models = st.fixed_dictionaries({}, optional={
    **{key: values for key in MODEL_KEYS},
    "source": NAMES | values, "name": NAMES | values, "targets": st.lists(NAMES, max_size=3) | values,
    "variants": st.lists(NAMES, max_size=2) | values, "memory": st.sampled_from(["3G", "0", "-1", "1e99", "12 parsecs", 7, -5]) | values,
    "options": options, "surprise": values,
})
tables = st.fixed_dictionaries({}, optional={
    **{key: values for key in TOP_KEYS},
    "targets": st.lists(NAMES, max_size=3) | values, "options": options,
    "variants": st.dictionaries(NAMES, options, max_size=3) | values,
    "models": st.lists(models, max_size=3) | values, "out": NAMES | values,
})
VALID = {"targets": ["phone", "onnx"], "options": {"seed": 0}, "variants": {"int8": {"quantize": "int8"}},
         "models": [{"source": "digits-cnn"}, {"source": "./m.keras", "name": "m", "calibration": "d.npz"}]}


@st.composite
def edited_valid(draw):
    """The documented example with a few keys removed, replaced or added: mostly valid, sometimes not."""
    table = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(0, 3))):
        part = draw(st.sampled_from(["top", "model", "options"]))
        if part == "top":
            target = table
        elif part == "options":
            target = table.get("options")
        else:  # an earlier edit may have replaced the models list
            listed = table.get("models")
            target = draw(st.sampled_from(listed)) if isinstance(listed, list) and listed else None
        if not isinstance(target, dict):
            continue
        key = draw(st.sampled_from(sorted(set(target) | set(TOP_KEYS if part == "top" else MODEL_KEYS if part == "model" else OPTION_KEYS))))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(values)
    return table


def toml_text(table: dict) -> str:
    """A matrix as TOML: scalars and inline tables at the top, [[models]] as an inline array."""
    return "".join(f"{key} = {toml_value(value)}\n" for key, value in table.items())


texts = st.one_of(tables.map(toml_text).map(str.encode), edited_valid().map(toml_text).map(str.encode), st.binary(max_size=200),
                  st.lists(st.sampled_from(["[[models]]", 'source = "digits-cnn"', 'targets = ["phone"]', "[variants.a]",
                                            "[options]", "seed = 1.5", "x = [", "[[models]]\nname = 3"]), max_size=8).map("\n".join).map(str.encode))


def test_matrix_tables(tmp_path):
    tally = Tally.named("build matrix tables")

    @given(tables | edited_valid())
    @examples(200)
    def case(table):
        tally.run(lambda: parse_matrix(copy.deepcopy(table), tmp_path / "matrix.toml"), table, sandbox=tmp_path)

    case()
    tally.check()


def test_matrix_files(tmp_path):
    tally = Tally.named("build matrix files")

    @given(texts)
    @examples(200)
    def case(data):
        path = tmp_path / "matrix.toml"
        path.write_bytes(data)
        tally.run(lambda: load_matrix(path), data[:200], sandbox=tmp_path)

    case()
    tally.check()

"""Fuzzed target profiles: TOML text and bytes, tables near the schema, and `extends` chains between files
(cycles, missing files, built-in names, paths that climb out). Every one must load or be refused (exit 2)."""

from __future__ import annotations

import copy
import datetime
import json
import math
import tomllib

from hypothesis import given, strategies as st

from edgezoo.formats.base import Quantization
from edgezoo.targets import resolve_profile
from edgezoo.targets.profile import SCHEMA_KEYS, TOLERANCE_RANGES, builtin_profiles, load_profile_file, profile_from_table
from tests.fuzz.harness import Tally, examples

QUANTIZATIONS = [q.value for q in Quantization]
FORMAT_OPTION_KEYS = ["opset", "shard_size_bytes", "integer_weights", "fixed_batch", "unknown_key"]


def toml_value(value) -> str:
    """A TOML literal for a generated value (inline tables and arrays; basic strings JSON-escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_text(table: dict) -> str:
    return "".join(f"{json.dumps(str(key))} = {toml_value(value)}\n" for key, value in table.items())


scalars = st.one_of(
    st.booleans(), st.integers(), st.integers(-3, 1 << 40), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["tflite", "onnx", "tfjs", "litert", "tflm", "onnxruntime", "tfjs-node", "tfjs-browser", "phone", "tflm",
                     *QUANTIZATIONS, "", "../phone.toml", "/etc/passwd"]),
    st.datetimes(), st.dates(),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                      max_leaves=8)
tolerance_tables = st.dictionaries(
    st.sampled_from(QUANTIZATIONS + ["int4", ""]),
    st.dictionaries(st.sampled_from(list(TOLERANCE_RANGES) + ["max_everything"]), scalars | values, max_size=4) | values,
    max_size=3,
)
tables = st.fixed_dictionaries(
    {},
    optional={
        **{name: (values if name not in ("tolerances", "format_options") else st.nothing()) for name in SCHEMA_KEYS if name != "extends"},
        "tolerances": tolerance_tables,
        "format_options": st.dictionaries(st.sampled_from(FORMAT_OPTION_KEYS), scalars, max_size=3) | values,
        "extends": st.sampled_from(list(builtin_profiles()) + ["", "missing.toml", "../../etc/passwd", "/dev/null", "."]) | values,
        "surprise": values,
    },
)
BUILTIN_TABLES = [tomllib.loads(path.read_text()) for path in builtin_profiles().values()]


@st.composite
def edited_builtins(draw):
    """A built-in profile's table with a few keys removed, replaced or added: mostly valid, sometimes not."""
    table = copy.deepcopy(draw(st.sampled_from(BUILTIN_TABLES)))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(set(table) | set(SCHEMA_KEYS))))
        action = draw(st.sampled_from(["drop", "set", "tolerance"]))
        if action == "drop":
            table.pop(key, None)
        elif action == "set":
            table[key] = draw(values)
        else:
            mode = draw(st.sampled_from(QUANTIZATIONS))
            if not isinstance(table.get("tolerances"), dict):  # an earlier edit may have replaced the table
                table["tolerances"] = {}
            if not isinstance(table["tolerances"].get(mode), dict):
                table["tolerances"][mode] = {}
            table["tolerances"][mode][draw(st.sampled_from(list(TOLERANCE_RANGES)))] = draw(scalars)
    return table


TOML_LINES = ["[tolerances.float32]", "[tolerances]", "[format_options]", "name = \"x\"", "format = \"tflite\"",
              "runtime = \"litert\"", "quantization = \"float32\"", "extends = \"phone\"", "min_snr_db = 1e400", "a = [1, [2",
              "[[tolerances]]", "x = 1979-05-27T07:32:00Z", "\"\\u0000\" = 1", "k = '''", "= =", "[a.b.c.d]"]
texts = st.one_of(
    st.lists(st.sampled_from(TOML_LINES) | st.text(max_size=40), max_size=12).map("\n".join).map(str.encode),
    st.binary(max_size=300),
    tables.map(toml_text).map(str.encode),
    edited_builtins().map(toml_text).map(str.encode),
)


def test_profile_files(tmp_path):
    tally = Tally.named("profile TOML files")

    @given(texts)
    @examples(200)
    def case(data):
        path = tmp_path / "profile.toml"
        path.write_bytes(data)
        tally.run(lambda: load_profile_file(path), data, sandbox=tmp_path)

    case()
    tally.check()


def test_profile_tables(tmp_path):
    tally = Tally.named("profile tables")

    @given(tables | edited_builtins())
    @examples(200)
    def case(table):
        tally.run(lambda: profile_from_table(dict(table), tmp_path / "p.toml"), table, sandbox=tmp_path)

    case()
    tally.check()


def test_profile_extends_chains(tmp_path):
    tally = Tally.named("profile extends chains")
    targets = st.one_of(st.integers(0, 4).map(lambda i: f"p{i}.toml"), st.sampled_from(
        ["phone", "microcontroller", "nothing", "missing.toml", "sub/../p0.toml", "../p1.toml", "./p2.toml", "/", "", "p3",
         "~/p0.toml", "~nobody-edgezoo/p.toml", "/proc/self/environ.toml", "z" * 300 + ".toml"]))
    chains = st.lists(st.fixed_dictionaries({"extends": targets}, optional={"body": tables}), min_size=1, max_size=5)

    @given(chains)
    @examples(200)
    def case(files):
        folder = tmp_path / "chain"
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for index, entry in enumerate(files):
            body = dict(entry.get("body", {}))
            body["extends"] = entry["extends"]
            (folder / f"p{index}.toml").write_text(toml_text(body))
        tally.run(lambda: resolve_profile(str(folder / "p0.toml")), files, sandbox=tmp_path)

    case()
    tally.check()


def test_profile_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tally = Tally.named("profile names and paths")

    @given(st.text(max_size=40) | st.sampled_from(["phone", "phone.toml", "~", "~nobody-edgezoo/x.toml", "/", "..", "a/b", "z" * 300 + ".toml"]))
    @examples(200)
    def case(name):
        tally.run(lambda: resolve_profile(name), name, sandbox=tmp_path)

    case()
    tally.check()

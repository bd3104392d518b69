"""Target profiles as data: the schema, inheritance, strict validation, the TFLM op set, `edgezoo targets`."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from edgezoo.formats.base import Quantization
from edgezoo.errors import TargetProfileError
from edgezoo.targets import builtin_profiles, resolve_profile
from edgezoo.targets.profile import SCHEMA, TOLERANCE_RANGES
from edgezoo.formats.tflite import tflm_ops

TARGETS_DIR = Path(__file__).resolve().parents[1] / "edgezoo" / "targets"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_every_builtin_profile_loads_under_its_file_name():
    names = builtin_profiles()
    assert {"phone", "phone-int8", "microcontroller"} <= set(names)
    for name in names:
        profile = resolve_profile(name)
        assert profile.name == name
        assert profile.quantization in profile.tolerances


def test_the_schema_is_documented_key_by_key():
    readme = (TARGETS_DIR / "README.md").read_text()
    for key in SCHEMA:
        assert f"| `{key.name}` |" in readme, f"README.md does not document '{key.name}'"
    for limit in TOLERANCE_RANGES:
        assert limit in readme


def test_phone_int8_extends_phone_and_overrides_quantisation():
    phone, npu = resolve_profile("phone"), resolve_profile("phone-int8")
    assert npu.extends == ("phone",)
    assert npu.quantization is Quantization.INT8 and npu.integer_io
    assert phone.quantization is Quantization.FLOAT16 and not phone.integer_io
    assert npu.tolerances == phone.tolerances and npu.runtime == phone.runtime == "litert"


def test_microcontroller_profile_states_its_device_contract():
    mcu = resolve_profile("microcontroller")
    assert (mcu.format, mcu.runtime, mcu.quantization, mcu.integer_io) == ("tflite", "tflm", Quantization.INT8, True)
    assert mcu.fixed_batch == 1 and mcu.op_set == "tflm" and mcu.emit_c_source
    assert mcu.max_model_bytes == 1_048_576 and mcu.max_arena_bytes == 262_144 and mcu.arena_margin == 0.1
    assert list(mcu.tolerances) == [Quantization.INT8]  # a float model is refused, not converted
    with pytest.raises(TargetProfileError, match="no parity tolerance for float16.*accepts: int8"):
        mcu.tolerance_for(Quantization.FLOAT16)


def test_user_profile_inherits_and_overrides_budgets_quantisation_and_tolerances(tmp_path):
    path = write(
        tmp_path,
        "tiny_board.toml",
        """
        extends = "microcontroller"
        max_arena_bytes = 65_536
        max_model_bytes = 200_000
        arena_margin = 0.25

        [tolerances.int8]
        min_top1_agreement = 0.99
        """,
    )
    board, mcu = resolve_profile(str(path)), resolve_profile("microcontroller")
    assert board.name == "tiny_board"  # a user profile's name is its file name, never the parent's
    assert board.extends == ("microcontroller",) and board.path == path
    assert (board.max_arena_bytes, board.max_model_bytes, board.arena_margin) == (65_536, 200_000, 0.25)
    assert board.tolerances[Quantization.INT8].min_top1_agreement == 0.99
    assert board.tolerances[Quantization.INT8].max_abs_error == mcu.tolerances[Quantization.INT8].max_abs_error  # merged
    assert (board.runtime, board.op_set, board.fixed_batch, board.emit_c_source) == ("tflm", "tflm", 1, True)
    assert board.to_json()["extends"] == ["microcontroller"]


def test_a_user_profile_can_extend_another_user_profile_by_relative_path(tmp_path):
    write(tmp_path, "base.toml", 'extends = "phone"\nquantization = "int8"\nmax_model_bytes = 5000\n')
    (tmp_path / "boards").mkdir()
    child = write(tmp_path / "boards", "child.toml", 'extends = "../base.toml"\nname = "child-board"\n')
    profile = resolve_profile(str(child))
    assert profile.name == "child-board" and profile.quantization is Quantization.INT8 and profile.max_model_bytes == 5000
    assert profile.extends[1] == "phone" and profile.extends[0].endswith("base.toml")


def test_every_problem_is_reported_at_once_with_hints(tmp_path):
    path = write(
        tmp_path,
        "bad.toml",
        """
        extends = "microcontroller"
        max_arena = 1000
        fixed_batch = "one"
        emit_c_source = 1
        """,
    )
    with pytest.raises(TargetProfileError) as caught:
        resolve_profile(str(path))
    message = str(caught.value)
    assert "unknown key 'max_arena' (did you mean 'max_arena_bytes'?)" in message
    assert "'fixed_batch' must be an integer (got 'one')" in message
    assert "'emit_c_source' must be true or false (got 1)" in message
    assert str(path) in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ('runtime = "tflm2"', "unknown runtime 'tflm2'; known: litert"),
        ('format = "coreml"', "unknown format 'coreml'"),
        ('op_set = "cmsis"', "unknown op_set 'cmsis'; known: tflm"),
        ('quantization = "int4"', "unknown quantization 'int4'"),
        ("max_arena_bytes = 0", "max_arena_bytes must be at least 1"),
        ("arena_margin = -0.5", "arena_margin is a fraction"),
        ('quantization = "float32"', "no [tolerances.float32] table"),
        ("[tolerances.int8]\nmin_cosine = 2.0", "min_cosine = 2.0 is outside [-1.0, 1.0]"),
        ("[tolerances.int8]\nmin_top1 = 0.9", "unknown key 'min_top1' (did you mean 'min_top1_agreement'?)"),
        ("[tolerances.int4]\nmin_cosine = 0.9", "[tolerances.int4]: unknown quantization 'int4'"),
        ('runtime = "litert"', "max_arena_bytes and emit_c_source need a runtime that measures its tensor arena; litert does not"),
        ('format = "onnx"\nruntime = "onnxruntime"', "emit_c_source needs the tflite format"),
        ('name = "my board!"', "name 'my board!' may hold only letters"),
    ],
)
def test_invalid_values_are_refused_with_a_clear_error(tmp_path, text, expected):
    path = write(tmp_path, "board.toml", f'extends = "microcontroller"\n{text}\n')
    with pytest.raises(TargetProfileError) as caught:
        resolve_profile(str(path))
    assert expected in str(caught.value)


def test_required_keys_and_broken_files(tmp_path):
    with pytest.raises(TargetProfileError, match="required key 'format' is missing"):
        resolve_profile(str(write(tmp_path, "a.toml", 'runtime = "litert"\nquantization = "float32"\n')))
    with pytest.raises(TargetProfileError, match="not valid TOML"):
        resolve_profile(str(write(tmp_path, "b.toml", "name = \n")))
    with pytest.raises(TargetProfileError, match="does not exist"):
        resolve_profile(str(tmp_path / "missing.toml"))
    with pytest.raises(TargetProfileError, match="'extends' names ./nowhere.toml"):
        resolve_profile(str(write(tmp_path, "c.toml", 'extends = "./nowhere.toml"\n')))
    with pytest.raises(TargetProfileError, match="no built-in profile"):
        resolve_profile(str(write(tmp_path, "d.toml", 'extends = "fridge"\n')))
    with pytest.raises(TargetProfileError, match="Did you mean 'microcontroller'"):
        resolve_profile("microcontrollr")


def test_a_cycle_of_extends_is_refused(tmp_path):
    write(tmp_path, "x.toml", 'extends = "y.toml"\n')
    write(tmp_path, "y.toml", 'extends = "x.toml"\n')
    with pytest.raises(TargetProfileError, match="cycle"):
        resolve_profile(str(tmp_path / "x.toml"))


# --- the TFLM op set ------------------------------------------------------------------------------


def test_tflm_op_set_comes_from_the_installed_library():
    supported = tflm_ops.supported_ops()
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE", "MEAN"} <= supported
    assert not {"GELU", "TILE", "TOPK_V2", "CONV_3D"} & supported  # real TFLite builtins TFLM has no kernel for
    assert 80 <= len(supported) <= 200
    assert "L2NORM_REF" in tflm_ops.kernels() and "L2NORM_REF" not in supported  # a kernel variant, not an op


@pytest.mark.skipif(shutil.which("nm") is None, reason="binutils' nm is not installed")
def test_tflm_op_set_matches_what_nm_lists():
    command = ["nm", "-D", "--defined-only", "--demangle", str(tflm_ops.runtime_library())]
    listed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    prefix = "tflite::micro::Register_"
    from_nm = {line.split(prefix, 1)[1].removesuffix("()") for line in listed.splitlines() if f" {prefix}" in line}
    assert from_nm == set(tflm_ops.kernels())


@pytest.mark.parametrize(
    "op, method",
    [
        ("CONV_2D", "AddConv2D"),
        ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"),
        ("FULLY_CONNECTED", "AddFullyConnected"),
        ("MAX_POOL_2D", "AddMaxPool2D"),
        ("L2_POOL_2D", "AddL2Pool2D"),
        ("RELU6", "AddRelu6"),
        ("PADV2", "AddPadV2"),
        ("BATCH_MATMUL", "AddBatchMatMul"),
        ("BATCH_TO_SPACE_ND", "AddBatchToSpaceNd"),
        ("UNIDIRECTIONAL_SEQUENCE_LSTM", "AddUnidirectionalSequenceLSTM"),
        ("TFLite_Detection_PostProcess", "AddDetectionPostprocess"),
    ],
)
def test_resolver_method_names_follow_tflm(op, method):
    assert tflm_ops.resolver_method(op) == method


# --- the CLI --------------------------------------------------------------------------------------


def test_targets_list_and_show(cli, tmp_path):
    listed = cli("targets", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = [t["name"] for t in json.loads(listed.stdout)["targets"]]
    assert {"phone", "phone-int8", "microcontroller"} <= set(names)

    shown = cli("targets", "show", "microcontroller")
    assert shown.returncode == 0, shown.stderr
    assert "max_arena_bytes = 262_144" in shown.stdout and "fixed_batch = 1" in shown.stdout
    assert "tflm supports" in shown.stdout and "CONV_2D" in shown.stdout

    board = write(tmp_path, "board.toml", 'extends = "microcontroller"\nmax_arena_bytes = 1000\n')
    shown = cli("targets", "show", str(board), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["name"] == "board" and data["extends"] == ["microcontroller"] and data["max_arena_bytes"] == 1000

    bad = cli("targets", "show", str(write(tmp_path, "bad.toml", 'extends = "phone"\nruntime = "nope"\n')))
    assert bad.returncode == 2 and "unknown runtime 'nope'" in bad.stderr and "Traceback" not in bad.stderr

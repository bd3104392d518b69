"""A corpus of hostile models and archives, each built here (no malicious binary ships in the repo) and each refused
before anything runs: every payload would write a marker file, and no marker appears. `--trust-model` is the only
way past the code-execution refusals (shown once: the trusted Lambda does run); it never opens an unsafe archive, a
pickle, or a weight path that climbs out of its folder. docs/security.md lists these cases with their test names."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import numpy as np
import pytest

import edgezoo
from edgezoo import _tf
from edgezoo.calibration import load_calibration
from edgezoo.errors import CalibrationDataError, CorruptModelError, UnsafeModelError
from edgezoo.validate_artifact import ValidateOptions, validate_artifact
from edgezoo.zoo.safety import TRUST_HINT


@pytest.fixture
def marker(tmp_path):
    """The file a payload would create; the test asserts it never appears."""
    path = tmp_path / "PAYLOAD_RAN"
    yield path


def _refused(source, marker, pattern, **load):
    with pytest.raises(UnsafeModelError, match=pattern) as caught:
        edgezoo.load(str(source), **load)
    assert caught.value.exit_code == 2
    assert not marker.exists(), "the payload ran"
    return caught.value


# --- SavedModels ------------------------------------------------------------------------------------


def _saved_model(folder, body):
    """A SavedModel whose serving function calls a nested tf.function holding `body` (the payload)."""
    tf = _tf.tf()

    @tf.function
    def nested(x):
        return body(tf, x)

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": nested(x)}

    module = Module()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def test_savedmodel_whose_nested_function_writes_a_file(tmp_path, marker):
    def write(tf, x):
        with tf.control_dependencies([tf.io.write_file(str(marker), "owned")]):
            return tf.identity(x)

    folder = _saved_model(tmp_path / "writes", write)
    assert not marker.exists()  # saving traced the function; it never ran
    _refused(folder, marker, r"WriteFile \(in __inference_nested")


def test_savedmodel_whose_nested_function_reads_a_file(tmp_path, marker):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    folder = _saved_model(tmp_path / "reads", lambda tf, x: x + tf.cast(tf.strings.length(tf.io.read_file(str(secret))), tf.float32))
    error = _refused(folder, marker, r"ReadFile \(in __inference_nested")
    assert str(folder) in str(error)  # where the model is, and nothing of the file's content: it was never read
    assert "private" not in str(error)


@pytest.mark.parametrize("op, wrap", [
    ("PyFunc", lambda tf, f, x: tf.numpy_function(f, [x], tf.float32)),
    ("EagerPyFunc", lambda tf, f, x: tf.py_function(f, [x], tf.float32)),
])
def test_savedmodel_that_runs_python(tmp_path, marker, op, wrap):
    def payload(x):
        marker.touch()
        return x

    def body(tf, x):
        y = wrap(tf, payload, x)
        y.set_shape([None, 4])
        return y

    folder = _saved_model(tmp_path / op, body)
    error = _refused(folder, marker, rf"{op} \(in __inference_nested")
    assert str(folder) in str(error) and "run Python" in str(error)


def test_savedmodel_with_an_op_from_a_custom_op_library(tmp_path, marker):
    """A graph op no TensorFlow op defines (as if made with tf.load_op_library): refused by name before TF loads it."""
    from tensorflow.core.protobuf import saved_model_pb2

    folder = _saved_model(tmp_path / "custom", lambda tf, x: tf.nn.relu(x))
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folder / "saved_model.pb").read_bytes())
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "Relu":
                node.op = "EvilZeroOut"
    (folder / "saved_model.pb").write_bytes(proto.SerializeToString())
    error = _refused(folder, marker, r"ops that TensorFlow does not define \(EvilZeroOut\).*custom op library")
    assert "--trust-model" in str(error)


# --- Keras files ------------------------------------------------------------------------------------


def _payload_lambda(marker):
    """A Python lambda that creates the marker whenever the layer runs (Keras runs it while rebuilding the model)."""
    return eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")  # noqa: S307  (the payload)


def test_h5_with_a_lambda_layer_is_refused_and_only_trust_runs_it(tmp_path, marker):
    keras = _tf.tf_keras()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(_payload_lambda(marker), name="payload"), keras.layers.Dense(2)])
    model.save(tmp_path / "lambda.h5")
    marker.unlink()  # building the model ran the lambda once, in this test
    _refused(tmp_path / "lambda.h5", marker, r"Lambda layers \(Lambda 'payload'\)")
    edgezoo.load(str(tmp_path / "lambda.h5"), trust_model=True)  # what --trust-model allows: the file's code runs
    assert marker.exists()


def test_keras_archive_naming_a_module_outside_keras(tmp_path, marker, monkeypatch):
    """A .keras config whose activation is a function of another module, whose import is the payload. Keras 3 releases
    before 3.9 imported the module a config names (CVE-2025-1550); the installed Keras refuses it itself (shown with
    trust), and edgezoo refuses it first whatever the installed Keras does."""
    import keras

    (tmp_path / "evil_payload.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\ndef act(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")]).save(tmp_path / "plain.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    layer = next(entry for entry in config["config"]["layers"] if entry["class_name"] == "Dense")
    layer["config"]["activation"] = {"module": "evil_payload", "class_name": "function", "config": "act", "registered_name": "function"}
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "evil.keras", "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    _refused(tmp_path / "evil.keras", marker, r"custom objects that Keras does not ship \(evil_payload\.act\)")
    with pytest.raises(CorruptModelError, match="evil_payload"):
        edgezoo.load(str(tmp_path / "evil.keras"), trust_model=True)
    assert not marker.exists()


def test_keras_archive_with_a_python_lambda(tmp_path, marker):
    _tf.tf()
    import keras

    keras.Sequential([keras.Input((4,)), keras.layers.Lambda(_payload_lambda(marker), name="payload")]).save(tmp_path / "l.keras")
    marker.unlink()
    error = _refused(tmp_path / "l.keras", marker, r"Lambda layers")
    assert "payload" in str(error) and "trust" in str(error).lower()  # the layer named, and how to load it knowingly


# --- hub archives -----------------------------------------------------------------------------------


def _hub_archive(path, members):
    """A .tar.gz hub module: a real (tiny) saved_model.pb first, then the hostile members."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\x08\x01\x12\x00"))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name, kind=tarfile.REGTYPE, data=b"", linkname="", size=None):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.size = len(data) if size is None and kind == tarfile.REGTYPE else (size or 0)
    return info, data if kind == tarfile.REGTYPE else None


HOSTILE_MEMBERS = {
    "symlink": ([_member("variables", tarfile.SYMTYPE, linkname="../outside"), _member("variables/PAYLOAD_RAN", data=b"x")], "a link"),
    "hardlink": ([_member("weights", tarfile.LNKTYPE, linkname="../../PAYLOAD_RAN")], "a link"),
    "absolute path": ([_member("/tmp/edgezoo-hostile-absolute/PAYLOAD_RAN", data=b"x")], "an absolute path"),
    "dot-dot": ([_member("variables/../../PAYLOAD_RAN", data=b"x")], "'..'"),
    "device": ([_member("dev-null", tarfile.CHRTYPE)], "a device, pipe"),
    "fifo": ([_member("pipe", tarfile.FIFOTYPE)], "a device, pipe"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MEMBERS))
def test_hub_archive_with_hostile_member(tmp_path, marker, case):
    members, problem = HOSTILE_MEMBERS[case]
    archive = _hub_archive(tmp_path / "module.tar.gz", members)
    error = _refused(f"hub:{archive}", marker, problem, trust_model=True)  # trust never opens an unsafe archive
    assert "nothing was written" in str(error)
    assert not list(tmp_path.rglob("PAYLOAD_RAN")) and not (tmp_path / "outside").exists()


def test_hub_archive_decompression_bomb_is_refused_at_the_stated_limit(tmp_path, marker, monkeypatch):
    monkeypatch.setenv("EDGEZOO_MAX_ARCHIVE_BYTES", str(1 << 20))  # 1 MiB for the test; the default is 16 GiB
    zeros = _member("variables/variables.data-00000-of-00001", data=bytes(8 << 20))
    archive = _hub_archive(tmp_path / "bomb.tar.gz", [zeros])
    assert archive.stat().st_size < 64 << 10  # 8 MiB of zeros in a few kilobytes
    error = _refused(f"hub:{archive}", marker, r"more than 1,048,576 bytes \(the limit, EDGEZOO_MAX_ARCHIVE_BYTES\).*decompression bomb")
    assert "8,388,608 bytes" in str(error)


# --- TF.js and data files -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfjs_model(tmp_path_factory, digits):
    from tests.edge_formats import convert

    return convert(digits, "tfjs", tmp_path_factory.mktemp("hostile_tfjs"))


@pytest.mark.parametrize("weight_path", ["../secret.bin", "/etc/hostname", "sub/../../secret.bin", "link.bin"])
def test_tfjs_weight_paths_that_leave_the_model_folder(tmp_path, tfjs_model, digits, weight_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"SECRET")
    (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
    model_json = json.loads(tfjs_model.path.read_text())
    for shard in tfjs_model.files[1:]:
        (folder / shard.name).write_bytes(shard.read_bytes())
    model_json["weightsManifest"][0]["paths"] = [weight_path]
    (folder / "model.json").write_text(json.dumps(model_json))
    with pytest.raises(UnsafeModelError, match="refusing to read it") as caught:
        validate_artifact(digits, folder / "model.json", ValidateOptions(out_dir=tmp_path / "out", trust_model=True))
    assert caught.value.exit_code == 2 and not (tmp_path / "out").exists()


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_data_file_with_pickled_objects_is_never_unpickled(tmp_path, marker, digits, suffix):
    evil = np.array([_Payload(marker), np.zeros((8, 8, 1), np.float32)], dtype=object)
    path = tmp_path / f"evil{suffix}"
    if suffix == ".npz":
        np.savez(path, image=evil)
    else:
        np.save(path, evil, allow_pickle=True)
    import pickle

    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is real: unpickling it writes the marker
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CalibrationDataError, match="never unpickles"):
        load_calibration(path, digits)
    assert not marker.exists()


def test_cli_refuses_pickled_calibration_data_with_exit_2(tmp_path, marker, cli):
    np.savez(tmp_path / "evil.npz", image=np.array([_Payload(marker)], dtype=object))
    result = cli("convert", "digits-cnn", "--calibration", tmp_path / "evil.npz", "--out", tmp_path / "out", "--trust-model")
    assert result.returncode == 2, result.stderr
    assert "never unpickles" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists() and not list(tmp_path.rglob("*.tflite"))


def test_trust_model_help_says_exactly_what_it_allows():
    from edgezoo.cli import build_parser

    text = " ".join(build_parser()._subparsers._group_actions[0].choices["convert"].format_help().split())
    assert "--trust-model" in text
    for allowed in ("Lambda layers", "custom objects", "file system ops", "Python ops", "custom op library"):
        assert allowed in text, allowed
    assert "never" in text and "archives" in text and "pickle" in text
    assert "--trust-model" in TRUST_HINT


def test_docs_state_every_limit():
    from edgezoo import limits
    from tests.conftest import REPO

    text = (REPO / "docs" / "security.md").read_text()
    for limit in limits.ALL:
        assert limit.env in text, limit.env

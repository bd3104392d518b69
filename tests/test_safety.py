"""Each refusal of zoo/safety.py, on real files: Lambda layers and custom objects in .keras and .h5,
path traversal and links in archives, SavedModels whose graph reads files or runs Python. And the
way out (trust_model) where it exists, and no false alarm on ordinary models."""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
import pytest

import edgezoo
from edgezoo import _tf
from edgezoo.errors import UnsafeModelError
from edgezoo.zoo.bundled import bundled_models
from edgezoo.zoo.safety import check_saved_model, risky_ops, safe_extract_tar


def _keras3():
    _tf.tf()
    import keras

    return keras


# --- Keras files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".keras", ".h5"])  # Keras 3 archive, tf-keras HDF5
def test_lambda_layers_are_refused(tmp_path, suffix):
    keras = _keras3() if suffix == ".keras" else _tf.tf_keras()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0, name="doubler"), keras.layers.Dense(2)])
    path = tmp_path / f"lambda{suffix}"
    model.save(path)
    with pytest.raises(UnsafeModelError, match=r"Lambda layers \(Lambda 'doubler'\).*--trust-model"):
        edgezoo.load(str(path))


def test_unknown_custom_object_in_h5_is_refused(tmp_path):
    keras = _tf.tf_keras()

    class Scale(keras.layers.Layer):
        def call(self, x):
            return x * 3.0

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense"), Scale(name="scale")])
    path = tmp_path / "custom.h5"
    model.save(path)
    with pytest.raises(UnsafeModelError, match=r"custom objects that Keras does not ship \(Scale 'scale'\)"):
        edgezoo.load(str(path))


def test_custom_object_in_keras3_archive_is_refused_unless_trusted(tmp_path):
    keras = _keras3()

    @keras.saving.register_keras_serializable(package="edgezoo_test")
    class Triple(keras.layers.Layer):
        def call(self, x):
            return x * 3.0

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), Triple(name="triple")])
    path = tmp_path / "custom.keras"
    model.save(path)
    with pytest.raises(UnsafeModelError, match=r"edgezoo_test>Triple 'triple'"):
        edgezoo.load(str(path))
    trusted = edgezoo.load(str(path), trust_model=True)  # the class is registered in this process
    assert trusted.outputs[0].shape[-1] == 3


def test_plain_keras_models_pass(tmp_path):
    keras = _keras3()
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(), keras.layers.Dense(3)])
    path = tmp_path / "plain.keras"
    model.save(path)
    assert edgezoo.load(str(path)).inputs[0].shape == (None, 8, 8, 1)


def test_cli_refuses_a_lambda_model_with_exit_code_2(tmp_path, cli):
    keras = _keras3()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x + 1.0), keras.layers.Dense(2)])
    model.save(tmp_path / "lambda.keras")
    result = cli("convert", tmp_path / "lambda.keras", "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    assert "Lambda" in result.stderr and "--trust-model" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# --- SavedModel graphs ----------------------------------------------------------------------------


def _save_module(tmp_path, name, body):
    tf = _tf.tf()

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": body(tf, x)}

    module = Module()
    folder = tmp_path / name
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def test_savedmodel_reading_files_is_refused_with_the_op_name(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")

    def read_secret(tf, x):
        return x + tf.cast(tf.strings.length(tf.io.read_file(str(secret))), tf.float32)

    folder = _save_module(tmp_path, "reads_file", read_secret)
    with pytest.raises(UnsafeModelError, match=r"ReadFile \(in __inference_serve"):
        edgezoo.load(str(folder))
    model = edgezoo.load(str(folder), trust_model=True)  # trusted: it loads
    assert model.inputs[0].name == "x"


def test_savedmodel_running_python_is_refused(tmp_path):
    def call_python(tf, x):
        y = tf.py_function(lambda t: t * 2.0, [x], tf.float32)
        y.set_shape([None, 4])
        return y

    folder = _save_module(tmp_path, "runs_python", call_python)
    assert "EagerPyFunc" in risky_ops(folder)
    with pytest.raises(UnsafeModelError, match="EagerPyFunc"):
        check_saved_model(folder, trust_model=False)
    check_saved_model(folder, trust_model=True)


def test_savedmodels_own_checkpoint_ops_are_not_flagged(tmp_path):
    assert risky_ops(bundled_models()["digits-cnn"] / "saved_model") == {}
    plain = _save_module(tmp_path, "plain", lambda tf, x: tf.nn.relu(x) * 2.0)
    assert risky_ops(plain) == {}
    np.testing.assert_allclose(_run(plain, np.array([[-1, 0, 1, 2]], np.float32)), [[0, 0, 2, 4]])


def _run(folder, x):
    tf = _tf.tf()
    return tf.saved_model.load(str(folder)).signatures["serving_default"](x=tf.constant(x))["y"].numpy()


# --- archives -------------------------------------------------------------------------------------


def _tar(tmp_path, add) -> os.PathLike:
    path = tmp_path / "archive.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def _file(tar, name, data=b"data"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "member, problem",
    [("../outside.txt", "'..'"), ("module/../../outside.txt", "'..'"), ("/tmp/edgezoo-absolute.txt", "absolute")],
)
def test_archive_paths_outside_the_folder_are_refused(tmp_path, member, problem):
    archive = _tar(tmp_path, lambda tar: (_file(tar, "saved_model.pb"), _file(tar, member)))
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeModelError, match=problem):
        safe_extract_tar(archive, dest)
    assert not dest.exists() or not any(dest.iterdir())
    assert not (tmp_path / "outside.txt").exists()


def test_archive_links_are_refused(tmp_path):
    def add(tar):
        link = tarfile.TarInfo("variables")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc"
        tar.addfile(link)

    with pytest.raises(UnsafeModelError, match="a link"):
        safe_extract_tar(_tar(tmp_path, add), tmp_path / "dest")


def test_plain_archive_extracts(tmp_path):
    archive = _tar(tmp_path, lambda tar: (_file(tar, "saved_model.pb", b"pb"), _file(tar, "variables/variables.index", b"ix")))
    safe_extract_tar(archive, tmp_path / "dest")
    assert (tmp_path / "dest/variables/variables.index").read_bytes() == b"ix"

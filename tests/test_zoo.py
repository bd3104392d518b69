"""Every source kind loaded end to end and converted (TFLite, phone target), all offline: Keras
applications with weights served by a web server on 127.0.0.1 (or none), TF Hub modules the tests
build (local folder, local archive, remote through a mirror and from their origin), local files
(.keras, .h5 and .hdf5, SavedModels of TF2 and tf-keras), finished artifacts refused by convert, the offline
errors, and `edgezoo zoo list | info | pull`."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import tarfile

import numpy as np
import pytest

import edgezoo
from edgezoo import _tf
from edgezoo.cli import run as run_cli
from edgezoo.errors import ChecksumError, CorruptModelError, DownloadError, SourceNotFoundError, UnsafeModelError, UsageError
from edgezoo.zoo import keras_apps
from edgezoo.zoo.cache import hub_module_dir, url_relative_path
from edgezoo.zoo.hub import handle_url, module_remote
from edgezoo.zoo.local import artifact_kind
from tests.loopback_server import loopback  # noqa: F401  (fixture)

SMALL_MOBILENET = "keras:MobileNetV2?alpha=0.35&input_size=96"
MOBILENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96.h5"


def _convert(source, tmp_path, **options):
    result = edgezoo.convert(source, target="phone", out_dir=tmp_path / "out", **options)
    assert result.passed, result.to_json()
    artifact = result.targets[0].artifact
    assert artifact.path.is_file() and artifact_kind(artifact.path) == "tflite"
    return result


def _run_saved_model(model, array):
    tf = _tf.tf()
    function = tf.saved_model.load(str(model.saved_model_dir)).signatures["serving_default"]
    return function(**{model.inputs[0].name: tf.constant(array)})[model.outputs[0].name].numpy()


# --- Keras applications ---------------------------------------------------------------------------


def test_catalog_lists_every_installed_keras_application_with_a_known_family():
    keras = _tf.tf_keras()
    installed = {n for n in dir(keras.applications) if n[0].isupper() and callable(getattr(keras.applications, n))}
    assert set(keras_apps.catalog()) == installed
    assert {entry["module"] for entry in keras_apps.catalog().values()} <= set(keras_apps.FAMILY_PREPROCESSING)
    assert keras_apps.catalog()["MobileNetV2"]["parameters"] == keras.applications.MobileNetV2(weights=None).count_params()


@pytest.mark.parametrize("module", sorted(keras_apps.FAMILY_PREPROCESSING))
def test_recorded_preprocessing_matches_each_familys_own_function(module):
    keras_module = importlib.import_module(f"tf_keras.src.applications.{module}")
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    expected = np.asarray(keras_module.preprocess_input(pixels.copy()))
    np.testing.assert_allclose(keras_apps.FAMILY_PREPROCESSING[module].apply(pixels), expected, rtol=1e-5, atol=1e-4)


def test_keras_app_without_weights_needs_no_network_and_converts(tmp_path):
    model = edgezoo.load(SMALL_MOBILENET + "&weights=none", offline=True, cache_dir=tmp_path / "cache")
    assert model.inputs[0].shape == (None, 96, 96, 3) and model.outputs[0].shape == (None, 1000)
    assert model.preprocessing.scale == pytest.approx(1 / 127.5) and model.preprocessing.offset == -1.0
    assert model.task == "classification" and model.labels is None and model.license is None
    assert model.details["files"] == [] and not (tmp_path / "cache" / "files").exists()
    _convert(model, tmp_path)


@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory):
    """A weights file for the small MobileNetV2, made here from a weights=None model. An untrained one
    answers every input alike, so batch-norm scales are raised until its logits vary (moderately)."""
    keras = _tf.tf_keras()
    model = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None, classifier_activation=None)
    rng = np.random.default_rng(1)
    for variable in model.weights:
        if "gamma" in variable.name:
            variable.assign(variable * rng.uniform(2.7, 3.3, variable.shape).astype(np.float32))
    path = tmp_path_factory.mktemp("weights") / MOBILENET_FILE
    model.save_weights(path)
    images = rng.uniform(-1, 1, (4, 96, 96, 3)).astype(np.float32)
    return path.read_bytes(), images, model.predict(images, verbose=0)


def _mirror_path(url: str) -> str:
    return "mirror/" + url_relative_path(url)


def _keras_url(module: str, file_name: str) -> str:
    return importlib.import_module(f"tf_keras.src.applications.{module}").BASE_WEIGHT_PATH + file_name


def test_keras_app_weights_come_through_the_mirror_into_the_cache(loopback, tmp_path, mobilenet_weights):
    weights, images, expected = mobilenet_weights
    url = _keras_url("mobilenet_v2", MOBILENET_FILE)
    loopback.serve(_mirror_path(url), weights)
    labels = tmp_path / "imagenet_class_index.json"
    labels.write_text(json.dumps({str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}))

    source = f"{SMALL_MOBILENET}&classifier_activation=none&labels={labels}"  # logits: easier to compare than softmax
    model = edgezoo.load(source, mirror=loopback.url + "/mirror", cache_dir=tmp_path / "cache")

    cached = tmp_path / "cache" / "files" / url_relative_path(url)
    assert cached.read_bytes() == weights
    assert loopback.requests == ["/" + _mirror_path(url)]
    assert model.details["files"][0]["origin"] == url and "no hash" in model.details["files"][0]["verification"]
    assert model.sha256 == hashlib.sha256(weights).hexdigest() and model.license == "Apache-2.0"
    assert model.labels[3] == "class_3" and len(model.labels) == 1000
    outputs = _run_saved_model(model, images)
    assert np.std(outputs, axis=0).max() > 0.1  # the outputs vary with the input
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)  # the served weights are the ones in use

    again = edgezoo.load(source, offline=True, cache_dir=tmp_path / "cache")
    assert again.sha256 == model.sha256 and len(loopback.requests) == 1  # from the cache, no request


def test_keras_published_hash_is_enforced(loopback, tmp_path):
    source = "keras:MobileNetV3Small?minimalistic=true&include_top=false&input_size=96"
    url = _keras_url("mobilenet_v3", "weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5")
    loopback.serve(_mirror_path(url), b"not the published weights")
    with pytest.raises(ChecksumError, match=r"md5.*Keras \(the tf_keras source\)"):
        edgezoo.load(source, mirror=loopback.url + "/mirror", cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.h5")) and not list((tmp_path / "cache" / ".partial").iterdir())


def test_imagenet_class_index_goes_through_the_same_checks(loopback, tmp_path, mobilenet_weights):
    from tf_keras.src.applications import imagenet_utils

    loopback.serve(_mirror_path(_keras_url("mobilenet_v2", MOBILENET_FILE)), mobilenet_weights[0])
    loopback.serve(_mirror_path(imagenet_utils.CLASS_INDEX_PATH), b'{"0": ["n0", "forged"]}')
    with pytest.raises(ChecksumError, match="imagenet_class_index.json"):
        edgezoo.load(SMALL_MOBILENET, mirror=loopback.url + "/mirror", cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_keras_app_offline_says_which_file_to_place_where(tmp_path, cli):
    url = _keras_url("mobilenet_v2", MOBILENET_FILE)
    with pytest.raises(DownloadError) as caught:
        edgezoo.load(SMALL_MOBILENET, offline=True, cache_dir=tmp_path / "cache")
    assert url in str(caught.value) and str(tmp_path / "cache" / "files" / url_relative_path(url)) in str(caught.value)

    result = cli("zoo", "pull", SMALL_MOBILENET, "--offline", "--cache-dir", tmp_path / "cache")
    assert result.returncode == 2 and "offline" in result.stderr and MOBILENET_FILE in result.stderr
    assert "Traceback" not in result.stderr


def test_keras_input_size_defaults_to_the_architectures_own():
    assert keras_apps.parse_source("keras:MobileNetV3Small").builder_kwargs()["input_shape"] == (224, 224, 3)
    assert keras_apps.parse_source("keras:NASNetLarge").builder_kwargs()["input_shape"] == (331, 331, 3)
    request = keras_apps.parse_source("keras:MobileNet?input_size=128x160&weights=none&include_top=false")
    assert request.builder_kwargs() == {"input_shape": (128, 160, 3), "weights": None, "include_top": False}
    assert request.canonical == "keras:MobileNet?include_top=false&input_size=128x160&weights=none"


def test_keras_bad_options_are_usage_errors():
    with pytest.raises(UsageError, match="unknown option"):
        edgezoo.load("keras:MobileNetV2?depth=3")
    with pytest.raises(UsageError, match="has no option 'alpha'"):
        edgezoo.load("keras:ResNet50?alpha=0.5&weights=none")
    with pytest.raises(SourceNotFoundError, match="MobileNetV2"):
        edgezoo.load("keras:MobileNetV9")
    with pytest.raises(UsageError, match="weights must be"):
        edgezoo.load("keras:MobileNetV2?weights=/no/such/file.h5")


# --- TF Hub ---------------------------------------------------------------------------------------


def _save_hub_module(folder, spatial):
    """A TF2 hub-style module: variables and a traced __call__, no serving signature."""
    tf = _tf.tf()
    rng = np.random.default_rng(2)

    class TinyClassifier(tf.Module):
        def __init__(self):
            self.kernel = tf.Variable(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
            self.dense = tf.Variable(rng.normal(size=(4, 5)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, spatial, spatial, 3], tf.float32)])
        def __call__(self, images):
            features = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(images, self.kernel, 1, "SAME")), axis=[1, 2])
            return tf.nn.softmax(tf.matmul(features, self.dense))

    tf.saved_model.save(TinyClassifier(), str(folder), signatures={})  # called as a function, as TF2 hub modules are
    return folder


def _tar_gz(folder, path):
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted(folder.rglob("*")):
            tar.add(item, arcname=str(item.relative_to(folder)), recursive=False)
    return path


@pytest.fixture(scope="module")
def hub_module(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    folder = _save_hub_module(root / "tiny", 32)
    return folder, _tar_gz(folder, root / "tiny.tar.gz")


def test_hub_local_module_folder_loads_and_converts(tmp_path, hub_module):
    model = edgezoo.load(f"hub:{hub_module[0]}")
    assert [(s.name, s.shape) for s in model.inputs] == [("inputs", (None, 32, 32, 3))]
    assert model.outputs[0].shape == (None, 5) and model.task == "classification"
    assert model.preprocessing.scale == pytest.approx(1 / 255)
    outputs = _run_saved_model(model, np.random.default_rng(3).uniform(0, 1, (8, 32, 32, 3)).astype(np.float32))
    assert np.std(outputs, axis=0).max() > 0
    _convert(model, tmp_path)


def test_hub_local_archive_is_extracted_safely(hub_module):
    model = edgezoo.load(f"hub:{hub_module[1]}")
    assert model.inputs[0].shape == (None, 32, 32, 3)
    assert model.sha256 == hashlib.sha256(hub_module[1].read_bytes()).hexdigest()


def test_hub_remote_module_through_the_mirror_then_offline(loopback, tmp_path, hub_module, cli):
    handle = "https://tfhub.dev/edgezoo-test/tiny/classification/1"
    archive = hub_module[1].read_bytes()
    loopback.serve("mirror/tfhub.dev/edgezoo-test/tiny/classification/1.tar.gz", archive)
    cache = tmp_path / "cache"

    result = cli("zoo", "pull", f"hub:{handle}", "--mirror", loopback.url + "/mirror", "--cache-dir", cache, "--json")
    assert result.returncode == 0, result.stderr
    pulled = json.loads(result.stdout)
    assert pulled["files"][0]["path"] == str(hub_module_dir(cache, handle))  # tensorflow_hub's own cache layout
    assert (hub_module_dir(cache, handle) / "saved_model.pb").is_file()
    assert loopback.requests == ["/mirror/tfhub.dev/edgezoo-test/tiny/classification/1.tar.gz"]

    model = edgezoo.load(f"hub:{handle}?sha256={hashlib.sha256(archive).hexdigest()}", offline=True, cache_dir=cache)
    assert model.name == "tiny-classification-1" and len(loopback.requests) == 1
    with pytest.raises(DownloadError, match=r"offline.*extract the archive into"):
        edgezoo.load("hub:https://tfhub.dev/edgezoo-test/other/1", offline=True, cache_dir=cache)


def test_hub_origin_download_asks_for_the_compressed_format(loopback, tmp_path, hub_module):
    url = loopback.serve("models/tiny/1", hub_module[1].read_bytes())
    model = edgezoo.load(f"hub:{url}", cache_dir=tmp_path / "cache")
    assert loopback.requests == ["/models/tiny/1?tf-hub-format=compressed"]
    assert model.details["handle"] == url


def test_hub_sha256_pin_is_enforced(loopback, tmp_path, hub_module):
    url = loopback.serve("models/tiny.tar.gz", hub_module[1].read_bytes())
    with pytest.raises(ChecksumError, match="sha256 option"):
        edgezoo.load(f"hub:{url}?sha256={'0' * 64}", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "hub").exists() or not any((tmp_path / "cache" / "hub").iterdir())


def test_hub_module_of_any_size_takes_the_input_shape_from_the_user(tmp_path):
    folder = _save_hub_module(tmp_path / "any_size", None)
    with pytest.raises(UsageError, match=r"\(\?,\?,3\).*input_shape"):
        edgezoo.load(f"hub:{folder}")
    model = edgezoo.load(f"hub:{folder}?input_shape=24,24,3")
    assert model.inputs[0].shape == (None, 24, 24, 3)


def test_hub_module_that_reads_files_is_refused(tmp_path):
    tf = _tf.tf()

    class Snooper(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            return x + tf.cast(tf.strings.length(tf.io.read_file("/etc/hostname")), tf.float32)

    tf.saved_model.save(Snooper(), str(tmp_path / "snooper"))
    with pytest.raises(UnsafeModelError, match="ReadFile"):
        edgezoo.load(f"hub:{tmp_path / 'snooper'}")


def test_kaggle_handles_and_hub_urls_map_to_compressed_downloads():
    url = handle_url("google/mobilenet-v2/tensorFlow2/100-224-classification/2")
    assert url == "https://www.kaggle.com/models/google/mobilenet-v2/tensorFlow2/100-224-classification/2"
    remote = module_remote(url, None)
    assert remote.origin == url + "?tf-hub-format=compressed"
    assert remote.relative_path == "www.kaggle.com/models/google/mobilenet-v2/tensorFlow2/100-224-classification/2.tar.gz"
    with pytest.raises(SourceNotFoundError):
        handle_url("not-a-handle")


# --- local files ----------------------------------------------------------------------------------


def _small_layers(keras):
    return [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(5, activation="softmax")]


def _make_keras3(folder):
    _tf.tf()
    import keras

    keras.Sequential(_small_layers(keras)).save(folder / "small.keras")
    return folder / "small.keras"


def _make_h5(folder):
    keras = _tf.tf_keras()
    keras.Sequential(_small_layers(keras)).save(folder / "small.h5")
    return folder / "small.h5"


def _make_tf_keras_saved_model(folder):
    keras = _tf.tf_keras()
    keras.Sequential(_small_layers(keras)).save(folder / "tfkeras_saved_model", save_format="tf")
    return folder / "tfkeras_saved_model"


def _make_tf2_saved_model(folder):
    tf = _tf.tf()
    hub_folder = _save_hub_module(folder / "module", 16)
    module = tf.saved_model.load(str(hub_folder))
    serve = tf.function(lambda image: {"scores": module(image)}, input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32, name="image")])
    tf.saved_model.save(module, str(folder / "tf2_saved_model"), signatures={"serving_default": serve.get_concrete_function()})
    return folder / "tf2_saved_model"


@pytest.mark.parametrize("make", [_make_keras3, _make_h5, _make_tf_keras_saved_model, _make_tf2_saved_model])
def test_local_model_files_load_and_convert(tmp_path, make):
    path = make(tmp_path)
    model = edgezoo.load(str(path))
    assert model.inputs[0].shape[1:] == (16, 16, 3) and model.outputs[0].shape[-1] == 5
    _convert(model, tmp_path)


def test_finished_artifacts_are_recognised_and_refused_by_convert(tmp_path, digits, cli):
    result = _convert(digits, tmp_path)
    tflite = result.targets[0].artifact.path
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    (tmp_path / "tfjs").mkdir()
    (tmp_path / "tfjs" / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {}, "weightsManifest": []}))
    assert artifact_kind(tflite) == "tflite" and artifact_kind(tmp_path / "model.onnx") == "onnx"
    assert artifact_kind(tmp_path / "tfjs" / "model.json") == "tfjs" and artifact_kind(tmp_path / "tfjs") == "tfjs"
    assert artifact_kind(digits.saved_model_dir) == "saved_model"
    for artifact in (tflite, tmp_path / "model.onnx", tmp_path / "tfjs" / "model.json"):
        with pytest.raises(UsageError, match="edgezoo validate"):
            edgezoo.load(str(artifact))
    refused = cli("convert", tflite, "--out", tmp_path / "again")
    assert refused.returncode == 2 and "a TFLite model" in refused.stderr


# --- edgezoo zoo list | info ----------------------------------------------------------------------


def test_zoo_list_filters_by_task_and_size(capsys):
    assert run_cli(["zoo", "list", "--task", "classification", "--max-params", "5M", "--json"]) == 0
    models = {m["source"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert {"digits-cnn", "keras:MobileNetV2", "keras:MobileNetV3Small"} <= set(models)
    assert "keras:ResNet50" not in models and all(m["parameters"] <= 5_000_000 for m in models.values())
    assert models["keras:MobileNetV2"]["license"] == "Apache-2.0" and "[-1, 1]" in models["keras:MobileNetV2"]["preprocessing"]
    assert run_cli(["zoo", "list", "--max-params", "lots"]) == 2


def test_zoo_info_reports_inputs_preprocessing_parameters_and_licence(capsys, tmp_path):
    assert run_cli(["zoo", "info", SMALL_MOBILENET + "&weights=none", "--offline", "--cache-dir", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["inputs"][0]["shape"] == [None, 96, 96, 3] and "[-1, 1]" in info["preprocessing"]["description"]
    keras = _tf.tf_keras()
    assert info["parameters"] == keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None).count_params()
    assert info["size_bytes"] > 0 and info["license"] is None

    assert run_cli(["zoo", "info", "digits-cnn"]) == 0
    human = capsys.readouterr().out
    assert "parameters:" in human and "weights licence:" in human


def test_zoo_info_json_is_clean_for_a_keras3_file(tmp_path, capsys):
    assert run_cli(["zoo", "info", str(_make_keras3(tmp_path)), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)  # nothing but the JSON on stdout
    assert info["parameters"] == (3 * 3 * 3 * 4 + 4) + (4 * 5 + 5) and info["task"] == "classification"


def test_every_source_module_is_registered():
    from edgezoo.zoo import SOURCE_MODULES, sources

    registered = {inspect.getmodule(entry.load).__name__ for entry in sources().values()}
    assert registered == set(SOURCE_MODULES)


def test_a_source_with_a_url_inside_goes_to_its_own_kind_whatever_was_imported_first():
    """`garden:...&checkpoint=http://...` has a '/', which the local-path kind also claims: kinds are asked in
    SOURCE_MODULES' order, not in the order their modules happened to be imported."""
    import subprocess
    import sys

    code = ("import edgezoo.zoo.local\nfrom edgezoo import zoo\n"
            "source = 'garden:retinanet_mobile_coco?classes=3&checkpoint=http://127.0.0.1:9/ckpt.tar.gz'\n"
            "print(next(e.name for e in zoo.sources().values() if e.matches(source)))")
    claimed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert claimed.stdout.strip() == "garden", claimed.stderr


# --- Keras HDF5 under its other name ----------------------------------------------------------------


@pytest.fixture(scope="module")
def gray_hdf5(tmp_path_factory):
    from tests.legacy_hdf5 import make_gray_hdf5

    return make_gray_hdf5(tmp_path_factory.mktemp("hdf5"))


def test_a_keras2_hdf5_file_loads_and_converts_as_an_h5_does(gray_hdf5, tmp_path, cli):
    """`emotion_model.hdf5` (legacy HDF5, model_config in its attributes) is the same format as `.h5`: loaded, converted
    by the CLI, and its outputs vary with the input; a weights-only .hdf5 says what it lacks."""
    from tests.legacy_hdf5 import gray_images

    assert artifact_kind(gray_hdf5) == "h5"
    upper = tmp_path / "EMOTION.HDF5"
    upper.write_bytes(gray_hdf5.read_bytes())
    assert artifact_kind(upper) == "h5"
    model = edgezoo.load(str(gray_hdf5))
    assert (model.name, model.inputs[0].shape, model.outputs[0].shape) == ("emotion_model", (None, 12, 12, 1), (None, 3))
    scores = _run_saved_model(model, gray_images())
    assert float(scores.std(axis=0).mean()) > 0.02  # not a constant softmax: parity on it would prove nothing
    run = cli("convert", gray_hdf5, "--target", "phone", "--out", tmp_path / "out", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "out" / "emotion_model" / "phone" / "report.json").read_text())
    assert report["model"]["source"] == str(gray_hdf5)

    keras = _tf.tf_keras()
    weights_only = tmp_path / "weights.hdf5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(weights_only)
    with pytest.raises(CorruptModelError, match="no model_config attribute"):
        edgezoo.load(str(weights_only))
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(SourceNotFoundError, match=r"a Keras HDF5 file \(\.h5, \.hdf5\)"):
        edgezoo.load(str(tmp_path / "notes.txt"))

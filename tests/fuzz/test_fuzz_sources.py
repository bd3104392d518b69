"""Fuzzed source strings (`keras:NAME?options`, `hub:` handles and URLs, paths) and the local model files they name
(.keras, .h5, SavedModel folders, hub archives; damaged copies of real ones). Loading is offline with an empty cache
in the case's folder, so no case touches the network, and a remote source ends in a DownloadError (exit 2)."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, strategies as st


from edgezoo.zoo import LoadOptions, load
from edgezoo.zoo.bundled import bundled_models
from edgezoo.zoo.keras_apps import OPTION_PARSERS as KERAS_OPTIONS, _builder, catalog, parse_source
from edgezoo.zoo.hub import OPTION_PARSERS as HUB_OPTIONS
from tests.fuzz.harness import Tally, examples
from tests.fuzz.mutations import damaged

OPTION_VALUES = ["", "0", "1", "-1", "96", "96x128", "0x0", "1e9", "true", "False", "yes", "avg", "max", "none", "imagenet", "nan",
                 "224,224,3", "x,y", "a" * 64, "0" * 64, "/etc/passwd", "~nobody-edgezoo/w.h5", "%00", "%2e%2e/%2e%2e", "&&", "=="]
option_pairs = st.lists(st.tuples(st.sampled_from(sorted(set(KERAS_OPTIONS) | set(HUB_OPTIONS) | {"tf-hub-format", "x"})) | st.text(max_size=8),
                                  st.sampled_from(OPTION_VALUES) | st.text(max_size=12)), max_size=4)
query = option_pairs.map(lambda pairs: ("?" + "&".join(f"{k}={v}" for k, v in pairs)) if pairs else "")
keras_sources = st.tuples(st.sampled_from(sorted(catalog())) | st.text(max_size=20), query).map(lambda p: "keras:" + p[0] + p[1])
HANDLES = ["https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/classification/5", "http://[::1", "http://", "https://x/../y",
           "https://h/a.tar.gz", "google/mobilenet-v2/tensorFlow2/100-224-classification/2", "a/b/c/d/e", "file:///etc/passwd",
           "ftp://example.invalid/m", "https://example.invalid:99999/m", "https://exa mple.invalid/m", "//host/path",
           "module.tar.gz", "folder", "archive.tar.gz", "garbage.tgz", "~nobody-edgezoo/m", "", "a" * 300, "https://h/" + "a" * 300]
hub_sources = st.tuples(st.sampled_from(HANDLES) | st.text(max_size=30), query).map(lambda p: "hub:" + p[0] + p[1])
PATHS = ["model.h5", "model.keras", "saved", "empty", "artifact.tflite", "m.onnx", "model.json", "missing.h5", "./", "/", "..",
         "/dev/null", "~", "~nobody-edgezoo/x.keras", "a\x00b.h5", str(bundled_models()["digits-cnn"] / "saved_model"), "digits-cnn",
         "bundled:nothing", "bundled:", "hub:", "keras:", "n" * 300 + ".h5", "d/" + "n" * 256]
sources = st.one_of(keras_sources, hub_sources, st.sampled_from(PATHS), st.text(max_size=40))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """Small real .keras and .h5 files, and a hub archive of a real SavedModel, to damage."""
    from edgezoo import _tf

    folder = tmp_path_factory.mktemp("model_files")
    tf_keras = _tf.tf_keras()
    tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)]).save(folder / "m.h5")
    import keras

    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(folder / "m.keras")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(bundled_models()["digits-cnn"] / "saved_model", arcname="module")
    return {"model.h5": (folder / "m.h5").read_bytes(), "model.keras": (folder / "m.keras").read_bytes(),
            "archive.tar.gz": buffer.getvalue(), "saved/saved_model.pb": (bundled_models()["digits-cnn"] / "saved_model/saved_model.pb").read_bytes()}


def test_keras_source_strings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tally = Tally.named("keras: source strings")

    def parse(source):  # everything but building the network: parsing, and the options checked against the builder
        request = parse_source(source)
        _builder(request)
        return request.canonical, request.display_name, request.builder_kwargs()

    @given(keras_sources)
    @examples(300)
    def case(source):
        tally.run(lambda: parse(source), source, sandbox=tmp_path)

    case()
    tally.check()


def test_sources_and_local_model_files(tmp_path, monkeypatch, model_files):
    monkeypatch.chdir(tmp_path)
    tally = Tally.named("sources, paths and model files")
    files = st.dictionaries(st.sampled_from(sorted(model_files)), st.none() | st.binary(max_size=64), max_size=2)

    @given(sources.filter(lambda s: not s.startswith("keras:")), files, st.data())
    @examples(300)
    def case(source, replaced, data):
        for name, original in model_files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.draw(damaged(original)) if name in replaced and replaced[name] is None
                             else replaced.get(name) or original)
        (tmp_path / "empty").mkdir(exist_ok=True)
        options = LoadOptions(offline=True, cache_dir=tmp_path / "cache")
        tally.run(lambda: load(source, options), (source, {k: (v or b"")[:20] for k, v in replaced.items()}),
                  sandbox=tmp_path, out_dir=tmp_path / "cache", timeout=60)

    case()
    tally.check()

"""The corpus matrix (docs/corpus.md): every corpus model converted for every built-in target through `edgezoo.convert`
(and the models of corpus.AUTO_MODELS also with --quantize auto and with every int8 diagnostic, corpus.EXTRA_COLUMNS),
its verdict checked against the expected-verdict table; and the corpus models themselves checked for health.

Regenerate the expected table after an intended change with `scripts/corpus_matrix.py --write-expected`.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests import corpus

EXPECTED = corpus.read_expected()
CELLS = sorted(EXPECTED)
MAX_CORPUS_BYTES = 4_000_000


@pytest.fixture(scope="session")
def matrix_out(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus_matrix")


def test_the_expected_table_has_one_cell_per_model_and_target():
    assert set(EXPECTED) == {(model, column) for model in corpus.names() for column in corpus.columns(model)}
    assert set(corpus.AUTO_MODELS) <= set(corpus.names())  # the extra columns (phone-auto, phone-int8-explain) run somewhere


@pytest.mark.parametrize(("model", "target"), CELLS, ids=[f"{model}-{target}" for model, target in CELLS])
def test_cell_verdict(model, target, matrix_out):
    cell, _ = corpus.convert_cell(model, target, matrix_out)
    problem = corpus.mismatch(cell, *EXPECTED[(model, target)])
    assert problem is None, problem


def test_a_changed_cell_is_caught():
    """What test_cell_verdict compares: a different verdict, or the same verdict for another reason, is a failure
    that names the cell; and the table reads back what it was written from."""
    refused = corpus.Cell("audio-convspec", "browser", "refused", 3, "audio-convspec uses TensorFlow ops that TF.js cannot run: Assert (in Assert).")
    text = f"<!-- expected:start -->\n{corpus.expected_table([refused])}\n<!-- expected:end -->"
    expected = corpus.read_expected(text)[("audio-convspec", "browser")]
    assert expected == ("refused", "uses TensorFlow ops that TF.js cannot run: Assert … in Assert")
    assert corpus.mismatch(refused, *expected) is None
    passed = corpus.Cell("audio-convspec", "browser", "pass", 0)
    assert "audio-convspec x browser: expected refused" in corpus.mismatch(passed, *expected)
    other = corpus.Cell("audio-convspec", "browser", "refused", 3, "the model is 2,000,000 bytes, over target 'browser''s flash budget")
    assert "got refused (exit 3)" in corpus.mismatch(other, *expected)
    with pytest.raises(ValueError, match="none of pass"):
        corpus.read_expected(text.replace("| refused |", "| refusd |"))


# --- the models are healthy: trained, varying with the input, as their model.json describes -------------------


@pytest.mark.parametrize("name", corpus.names())
def test_corpus_model_is_healthy(name):
    from edgezoo.zoo.reference import run_reference

    entry = corpus.corpus_model(name)
    meta, model, data = entry.meta, corpus.loaded(name), entry.data()
    assert [s.name for s in model.inputs] == sorted(data) == [i["name"] for i in meta["inputs"]]
    assert all(array.dtype == np.float32 for array in data.values())
    assert 160 <= entry.num_samples <= 240
    assert [o.name for o in model.outputs] == [o["name"] for o in meta["outputs"]]
    outputs = run_reference(model, data)
    for output, values in outputs.items():
        spread = float(values.std(axis=0).mean())  # over the samples: zero for a constant output
        assert spread > 0.01 * float(np.abs(values).max()), f"{name}: output {output} hardly varies with the input ({spread:.3g})"
        assert spread == pytest.approx(meta["output_ranges"][output]["std_over_samples"], rel=0.01), f"{name}: {output} differs from model.json"
    for score in corpus.evaluate(meta["evaluation"], outputs, entry.targets()):
        recorded = next(e["value"] for e in meta["evaluation"] if e["output"] == score["output"] and e["score"] == score["score"])
        assert score["value"] == pytest.approx(recorded, abs=2e-3), f"{name}: {score['output']} {score['score']} is not what model.json says"
        # Trained: at least half of the way from a trivial predictor (majority class, mean value) to perfect.
        assert score["value"] > score["baseline"] + 0.5 * (1.0 - score["baseline"]), f"{name}: {score}"
    training = meta["training"]
    assert training["final_epoch"]["loss"] < 0.5 * training["first_epoch"]["loss"], f"{name}: training did not lower the loss: {training}"


def test_classifiers_decide_more_than_one_class():
    """A constant softmax (every class 1/N, or one class for every input) would make top-1 agreement meaningless."""
    from edgezoo.zoo.reference import run_reference

    classifiers = [name for name in corpus.names() if corpus.corpus_model(name).meta["task"] == "classification"]
    assert len(classifiers) >= 3
    for name in classifiers:
        (probabilities,) = run_reference(corpus.loaded(name), corpus.corpus_model(name).data()).values()
        assert len(np.unique(np.argmax(probabilities, axis=-1))) == probabilities.shape[-1], name


def test_the_corpus_stays_small():
    total = sum(path.stat().st_size for path in corpus.CORPUS_DIR.rglob("*") if path.is_file())
    assert len(corpus.names()) >= 12 and total < MAX_CORPUS_BYTES, total

"""`edgezoo validate` on artifacts whose tensor names say nothing (`Identity_1:0`, `output_2`, `p`): same-shaped
tensors matched by values, with the margin reported and doubt flagged; --input-map / --output-map override it;
bad maps are usage errors. The artifacts are made with tf2onnx and the TFLite converter directly, as another tool
would make them (edgezoo's own converters keep the signature's names)."""

from __future__ import annotations

import itertools
import json

import jsonschema
import numpy as np
import pytest

from edgezoo import _tf
from edgezoo.errors import UsageError
from edgezoo.reports.json_report import TARGET_REPORT_KIND, schema_for
from edgezoo.validate import matching
from edgezoo.validate_artifact import ValidateOptions, validate_artifact
from tests.edge_formats import save_module


@pytest.fixture(scope="session")
def foreign(tmp_path_factory):
    """Two small SavedModels and artifacts of them with tool-default names, some in a shuffled order.

    heads: x [None, 4] -> onset [None, 5, 3] (sigmoid, 0..1), frame [None, 5, 3] (100 tanh, up to +-100), velocity [None, 2].
    pair: left, right [None, 4] -> y, z [None, 3]; swapping the inputs or the outputs changes the values.
    """
    tf = _tf.tf()
    import tf2onnx

    folder = tmp_path_factory.mktemp("foreign")
    rng = np.random.default_rng(7)
    weights = lambda *shape: tf.Variable(rng.normal(size=shape).astype(np.float32))  # noqa: E731

    class Heads(tf.Module):
        def __init__(self):
            super().__init__()
            self.k1, self.k2, self.k3 = weights(4, 15), weights(4, 15), weights(4, 2)

        @tf.function
        def serve(self, x):
            onset = tf.reshape(tf.sigmoid(tf.matmul(x, self.k1)), [-1, 5, 3])
            frame = tf.reshape(100.0 * tf.tanh(tf.matmul(x, self.k2)), [-1, 5, 3])
            return {"onset": onset, "frame": frame, "velocity": tf.matmul(x, self.k3)}

    class Pair(tf.Module):
        def __init__(self):
            super().__init__()
            self.k1, self.k2, self.k3, self.k4 = weights(4, 3), weights(4, 3), weights(4, 3), weights(4, 3)

        @tf.function
        def serve(self, left, right):
            return {"y": tf.tanh(tf.matmul(left, self.k1) + 0.5 * tf.matmul(right, self.k2)),
                    "z": tf.tanh(tf.matmul(right, self.k3) - tf.matmul(left, self.k4))}

    heads = save_module(Heads(), folder / "heads", tf.TensorSpec([None, 4], tf.float32, name="x"))
    spec = [tf.TensorSpec([None, 4], tf.float32, name="left"), tf.TensorSpec([None, 4], tf.float32, name="right")]
    pair_module = Pair()
    tf.saved_model.save(pair_module, str(folder / "pair"), signatures={"serving_default": pair_module.serve.get_concrete_function(*spec)})
    import edgezoo

    pair = edgezoo.load(str(folder / "pair"))

    with _tf.quiet_native_output():
        loaded = tf.saved_model.load(str(heads.saved_model_dir))  # kept alive: the functions below call its signature
        signature = loaded.signatures["serving_default"]
        x = tf.TensorSpec([None, 4], tf.float32, name="x")

        def onnx_of(order, name):
            # A tuple of outputs: tf2onnx names them Identity:0, Identity_1:0, ... in this order.
            @tf.function(input_signature=[x])
            def serve(x):
                outputs = signature(x=x)
                return tuple(outputs[key] for key in order)

            tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=17, output_path=str(folder / name))

        onnx_of(("onset", "frame", "velocity"), "heads.onnx")
        onnx_of(("frame", "onset", "velocity"), "heads_swapped.onnx")  # Identity:0 is frame: position would mislead

        @tf.function(input_signature=[x])
        def serve_tflite(x):
            outputs = signature(x=x)
            return outputs["frame"], outputs["velocity"], outputs["onset"]

        # From a concrete function, the TFLite converter names the signature's outputs output_0, output_1, ...
        converter = tf.lite.TFLiteConverter.from_concrete_functions([serve_tflite.get_concrete_function()], loaded)
        (folder / "heads.tflite").write_bytes(converter.convert())

        pair_loaded = tf.saved_model.load(str(pair.saved_model_dir))
        pair_signature = pair_loaded.signatures["serving_default"]

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="p"), tf.TensorSpec([None, 4], tf.float32, name="q")])
        def serve_pair(p, q):
            outputs = pair_signature(left=q, right=p)  # p stands for right, q for left; Identity:0 is z
            return outputs["z"], outputs["y"]

        tf2onnx.convert.from_function(serve_pair, input_signature=serve_pair.input_signature, opset=17, output_path=str(folder / "pair.onnx"))
    return {"heads": heads, "pair": pair, "folder": folder}


def _scramble_onnx(source, target, seed: int = 3) -> None:
    """Every float initializer shuffled: a valid model whose outputs resemble none of the original's."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    rng = np.random.default_rng(seed)
    for tensor in model.graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT and int(np.prod(tensor.dims)) > 1:
            values = numpy_helper.to_array(tensor).copy()
            rng.shuffle(values.reshape(-1))
            tensor.CopyFrom(numpy_helper.from_array(values, name=tensor.name))
    onnx.save(model, str(target))


def test_same_shaped_outputs_are_matched_by_values_with_a_margin(foreign, tmp_path, cli):
    heads = foreign["heads"].saved_model_dir
    done = cli("validate", heads, foreign["folder"] / "heads.onnx", "--out", tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["report"]
    jsonschema.validate(report, schema_for(TARGET_REPORT_KIND), cls=jsonschema.Draft202012Validator)
    outputs = report["validated"]["matching"]["outputs"]
    assert report["validated"]["outputs"] == {"onset": "Identity:0", "frame": "Identity_1:0", "velocity": "Identity_2:0"}
    assert outputs["velocity"]["how"] == "by shape" and report["validated"]["matching"]["inputs"]["x"]["how"] == "by name"
    for name, wrong in (("onset", "Identity_1:0"), ("frame", "Identity:0")):
        match = outputs[name]
        assert match["how"] == "matched by values" and match["certain"] and match["alternative"] == wrong
        assert match["error"] < 1e-5 and match["alternative_error"] > 0.5 and match["margin"] > 1e4  # scale-free: 0..1 against +-100
    assert report["validated"]["matching_uncertain"] is False and report["passed"]
    html = (tmp_path / "heads" / "validate-onnx" / "report.html").read_text()
    assert "matched by values" in html and "Identity_1:0" in html and "UNCERTAIN" not in html


@pytest.mark.parametrize("artifact, expected", [
    ("heads_swapped.onnx", {"onset": "Identity_1:0", "frame": "Identity:0", "velocity": "Identity_2:0"}),
    ("heads.tflite", {"onset": "output_2", "frame": "output_0", "velocity": "output_1"}),
])
def test_outputs_in_another_order_are_still_matched_by_values(foreign, tmp_path, artifact, expected):
    result = validate_artifact(foreign["heads"], foreign["folder"] / artifact, ValidateOptions(out_dir=tmp_path))
    assert result.passed, result.parity.summary()
    assert result.report["validated"]["outputs"] == expected
    assert [result.matching.outputs[n].how for n in ("onset", "frame")] == [matching.BY_VALUES] * 2
    assert not result.matching.uncertain and result.matching.outputs["velocity"].how == matching.BY_SHAPE
    assert [o.name for o in result.parity.outputs] == sorted(expected)  # reported under the original's names


def test_a_wrong_output_map_fails_parity(foreign, tmp_path, cli):
    """The map is obeyed, not second-guessed by values: a swapped map is a failed check (exit 1), so matching cannot
    make a wrong pairing look right."""
    done = cli("validate", foreign["heads"].saved_model_dir, foreign["folder"] / "heads.onnx", "--out", tmp_path, "--json",
               "--output-map", "onset=Identity_1:0", "--output-map", "frame=Identity:0")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)["report"]
    assert report["validated"]["matching"]["outputs"]["onset"] == {"tensor": "Identity_1:0", "how": "by map", "certain": True}
    failed = {o["name"] for o in report["parity"]["outputs"] if not o["passed"]}
    assert failed == {"onset", "frame"}


def test_a_broken_artifact_still_fails_and_doubtful_matches_are_flagged(foreign, tmp_path):
    """Values pick the least-bad pairing of a scrambled model: it still fails, and the matching says loudly it is unsure."""
    from edgezoo.target_run import Feedback

    scrambled = tmp_path / "pair_scrambled.onnx"
    _scramble_onnx(foreign["folder"] / "pair.onnx", scrambled)
    warnings = []
    result = validate_artifact(foreign["pair"], scrambled, ValidateOptions(out_dir=tmp_path / "out"), Feedback(warn=warnings.append))
    assert not result.passed and result.matching.uncertain
    assert any(w.startswith("UNCERTAIN MATCH") and "--output-map" in w for w in warnings), warnings
    validated = result.report["validated"]
    assert validated["matching_uncertain"] is True and not result.report["passed"]
    doubtful = [m for kind in ("inputs", "outputs") for m in validated["matching"][kind].values() if not m["certain"]]
    assert doubtful and all(m["how"] == "matched by values" and m["margin"] < matching.MIN_MARGIN for m in doubtful)
    assert "UNCERTAIN MATCH" in (result.output_dir / "report.html").read_text()


def test_an_artifact_that_does_not_run_leaves_the_match_undecided(foreign, tmp_path):
    """No values, no matching by values: the report says so instead of presenting a guess as a match."""
    import onnx

    broken = tmp_path / "heads_unknown_op.onnx"
    model = onnx.load(str(foreign["folder"] / "heads.onnx"))
    model.graph.node[0].op_type = "NoSuchOp"  # onnx reads it; ONNX Runtime refuses to load it
    onnx.save(model, str(broken))
    result = validate_artifact(foreign["heads"], broken, ValidateOptions(out_dir=tmp_path))
    assert not result.passed and "ONNX Runtime cannot load" in result.parity.error
    outputs = result.report["validated"]["matching"]["outputs"]
    assert outputs["onset"]["how"] == outputs["frame"]["how"] == matching.UNDECIDED and outputs["velocity"]["how"] == "by shape"
    assert result.report["validated"]["matching_uncertain"] is True


def test_same_shaped_inputs_are_matched_by_values(foreign, tmp_path):
    """pair.onnx feeds p to right and q to left, and lists z before y: both are found by running the artifact
    under each assignment of the inputs and keeping the one whose outputs match best."""
    result = validate_artifact(foreign["pair"], foreign["folder"] / "pair.onnx", ValidateOptions(out_dir=tmp_path))
    assert result.passed, result.parity.summary()
    validated = result.report["validated"]
    assert validated["inputs"] == {"left": "q", "right": "p"} and validated["outputs"] == {"y": "Identity_1:0", "z": "Identity:0"}
    left = validated["matching"]["inputs"]["left"]
    assert left["how"] == "matched by values" and left["alternative"] == "p" and left["margin"] > 1e4 and left["certain"]
    forced = validate_artifact(foreign["pair"], foreign["folder"] / "pair.onnx",
                               ValidateOptions(out_dir=tmp_path, force=True, input_map={"left": "p", "right": "q"}))
    assert not forced.passed and forced.matching.inputs["left"].how == matching.BY_MAP


def test_a_bad_map_is_a_usage_error_naming_the_known_tensors(foreign, tmp_path, cli):
    done = cli("validate", foreign["heads"].saved_model_dir, foreign["folder"] / "heads.onnx", "--out", tmp_path,
               "--output-map", "offset=Identity:0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'offset' is not one of the original's outputs" in done.stderr
    assert all(name in done.stderr for name in ("onset [None, 5, 3]", "frame [None, 5, 3]", "velocity [None, 2]"))
    heads, onnx = foreign["heads"], foreign["folder"] / "heads.onnx"
    cases = {
        "'Identity_7:0' is not one of the artifact's outputs: Identity:0 [None, 5, 3], Identity_1:0": {"output_map": {"onset": "Identity_7:0"}},
        "maps both 'onset' and 'frame' to 'Identity:0'": {"output_map": (("onset", "Identity:0"), ("frame", "Identity:0"))},
        "'velocity' [None, 2] and 'Identity:0' [None, 5, 3] differ in shape": {"output_map": {"velocity": "Identity:0"}},
        "gives 'onset' twice": {"output_map": (("onset", "Identity:0"), ("onset", "Identity_1:0"))},
        "'y' is not one of the original's inputs: x [None, 4]": {"input_map": {"y": "x"}},
    }
    for message, fields in cases.items():
        with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
            validate_artifact(heads, onnx, ValidateOptions(out_dir=tmp_path, **fields))
    assert not (tmp_path / "heads").exists()  # refused before any work


def test_plans_by_map_name_shape_and_groups_for_values():
    """What names and shapes decide, without running anything."""
    plan = matching.plan_outputs({"probs": (None, 10)}, {"Identity:0": (1, 10)})
    assert plan.decided == {"probs": matching.Match("Identity:0", matching.BY_SHAPE)} and not plan.groups
    model = {"boxes": (None, 4), "a": (None, 5, 3), "b": (None, 5, 3), "scores": (None, 10)}
    artifact = {"out_0": (1, 5, 3), "scores": (1, 10), "out_2": (1, 4), "out_3": (1, 5, 3), "extra": (1, 7)}
    plan = matching.plan_outputs(model, artifact)
    assert {n: (m.tensor, m.how) for n, m in plan.decided.items()} == {"scores": ("scores", "by name"), "boxes": ("out_2", "by shape")}
    assert plan.groups == ((("a", "b"), ("out_0", "out_3")),)  # the artifact's extra output is not checked
    mapped = matching.plan_outputs(model, artifact, {"a": "out_3"})
    assert mapped.decided["a"].how == "by map" and mapped.decided["b"] == matching.Match("out_0", matching.BY_SHAPE)
    same = {f"in_{i}": (None, 4) for i in range(4)}
    assert matching.plan_inputs(dict(list(same.items())[:3]), {f"t{i}": (1, 4) for i in range(3)}).groups  # 3! = 6 trials: tried
    with pytest.raises(UsageError, match="trying all 24 assignments is more than edgezoo tries .6.; give --input-map"):
        matching.plan_inputs(same, {f"t{i}": (1, 4) for i in range(4)})
    with pytest.raises(UsageError, match="one to one"):
        matching.plan_outputs({"a": (None, 3), "b": (None, 3)}, {"x": (1, 3), "y": (1, 2)})


def test_assignment_and_margin_over_three_same_shaped_outputs():
    """The assignment is a proper one (not greedy), and each margin is the best other assignment's total error."""
    rng = np.random.default_rng(0)
    reference = {name: rng.normal(size=(16, 6)) * scale for name, scale in (("a", 1.0), ("b", 1000.0), ("c", 0.001))}
    tensors = {"t0": reference["c"] * 1.001, "t1": reference["a"] + 1e-3, "t2": reference["b"] * (1 + 1e-4 * rng.normal(size=(16, 6)))}
    plan = matching.plan_outputs({n: (None, 6) for n in reference}, {t: (1, 6) for t in tensors})
    inputs = matching.plan_inputs({"x": (None, 2)}, {"x": (1, 2)})
    runs = []
    result, produced = matching.resolve(inputs, plan, reference, lambda feed: runs.append(feed) or tensors)
    assert runs == [{"x": "x"}] and produced is tensors
    assert result.tensors("outputs") == {"a": "t1", "b": "t2", "c": "t0"}
    for name, match in result.outputs.items():
        assert match.error == pytest.approx(matching.pair_error(reference[name], tensors[match.tensor]))
        assert match.certain and match.margin > 100
    # c's best alternative swaps it with the cheapest partner; its error is that whole assignment's total
    c = result.outputs["c"]
    costs = {(n, t): matching.pair_error(reference[n], tensors[t]) for n in reference for t in tensors}
    best_other = min(sum(costs[n, t] for n, t in zip(reference, order)) for order in
                     itertools.permutations(tensors) if dict(zip(reference, order))["c"] != "t0")
    assert c.alternative_error == pytest.approx(best_other)

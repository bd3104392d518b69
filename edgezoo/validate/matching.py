"""Which of an artifact's tensors stands for which of the original's, for `edgezoo validate`.

Artifacts made by other tools rename tensors (`StatefulPartitionedCall:0`, `Identity_1:0`, `output_0`) and
reorder them. The rule, in order: the user's --input-map / --output-map; equal names; a shape only one tensor
on each side has. Where those cannot decide (tensors of the same shape), values do: the artifact runs on
the held-out inputs and the assignment with the least total error wins, over same-shaped candidates only.
Each match records how it was made; a match by values records its error, the best alternative's error and
the ratio of the two (the margin), and is flagged uncertain when the margin is small.

Errors are relative L2 (metrics.relative_l2_error), so outputs of different magnitude weigh alike. Outputs are
matched by a proper assignment (scipy's linear_sum_assignment); inputs by trying every assignment of each
same-shaped group (one artifact run each), keeping the one whose outputs match the original best.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgezoo.errors import UsageError
from edgezoo.validate.metrics import relative_l2_error

BY_MAP = "by map"
BY_NAME = "by name"
BY_SHAPE = "by shape"
BY_VALUES = "matched by values"
ONLY_ONE = "the only one left"  # one tensor on each side, of different shapes: parity reports the difference
UNDECIDED = "undecided: the artifact did not run"

MIN_MARGIN = 2.0  # a match by values whose best alternative is less than this many times worse is uncertain
MAX_INPUT_TRIALS = 6  # assignments of same-shaped inputs tried by running the artifact (3 inputs: 3! = 6)
ERROR_CAP = 1e6  # relative errors beyond this (NaN, a zero reference, a shape that differs at run time) all mean "no match"
MARGIN_CAP = 1e12  # an exact match against any other: a large finite margin keeps report.json valid

Shapes = dict[str, tuple]
Run = Callable[[dict[str, str]], dict[str, np.ndarray]]  # original input name -> artifact tensor; returns outputs by tensor


@dataclass(frozen=True)
class Match:
    tensor: str  # the artifact's tensor standing for the original's
    how: str  # BY_MAP, BY_NAME, BY_SHAPE, ONLY_ONE, BY_VALUES or UNDECIDED
    # Matched by values only. Outputs: `error` is this pair's relative L2 error, `assignment_error` the total over its
    # group. Inputs: both are the total error over all outputs with the chosen assignment of inputs.
    error: float | None = None
    assignment_error: float | None = None
    alternative: str | None = None  # the tensor the best assignment that gives this name another tensor chooses
    alternative_error: float | None = None  # that assignment's total error

    @property
    def margin(self) -> float | None:
        """How many times worse the best alternative is than the chosen assignment."""
        if self.how != BY_VALUES or self.alternative_error is None:
            return None
        return min(MARGIN_CAP, self.alternative_error / max(self.assignment_error, 1e-300))

    @property
    def certain(self) -> bool:
        return self.how in (BY_MAP, BY_NAME, BY_SHAPE, ONLY_ONE) or (self.how == BY_VALUES and self.margin >= MIN_MARGIN)

    def to_json(self) -> dict:
        data = {"tensor": self.tensor, "how": self.how, "certain": self.certain}
        if self.how == BY_VALUES:
            data.update(error=self.error, assignment_error=self.assignment_error, alternative=self.alternative,
                        alternative_error=self.alternative_error, margin=self.margin)
        return data


@dataclass(frozen=True)
class TensorPlan:
    """What names and shapes decide, and the groups of same-shaped tensors only values can tell apart."""

    kind: str  # "inputs" or "outputs"
    order: tuple[str, ...]  # the original's names, in its signature's order
    decided: dict[str, Match]
    groups: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()  # (the original's names, the artifact's tensors)

    def in_order(self) -> dict[str, str]:
        """Every name to a tensor, a group's names to its tensors in the order listed: for uses where any same-shaped
        tensor does (timing), and for a report when the artifact could not run."""
        pairs = {name: match.tensor for name, match in self.decided.items()}
        for names, tensors in self.groups:
            pairs.update(zip(names, tensors))
        return {name: pairs[name] for name in self.order}


@dataclass(frozen=True)
class Matching:
    inputs: dict[str, Match]
    outputs: dict[str, Match]

    def tensors(self, kind: str) -> dict[str, str]:
        return {name: match.tensor for name, match in getattr(self, kind).items()}

    @property
    def uncertain(self) -> bool:
        return any(not m.certain for m in (*self.inputs.values(), *self.outputs.values()))

    def warnings(self) -> list[str]:
        messages = []
        for kind, flag in (("inputs", "--input-map"), ("outputs", "--output-map")):
            doubtful = {name: m for name, m in getattr(self, kind).items() if m.how == BY_VALUES and not m.certain}
            if doubtful:
                details = "; ".join(
                    f"'{name}' -> '{m.tensor}' (total error {m.assignment_error:.3g}) against '{name}' -> '{m.alternative}' "
                    f"(total {m.alternative_error:.3g}, only {m.margin:.3g}x worse)"
                    for name, m in doubtful.items()
                )
                messages.append(
                    f"UNCERTAIN MATCH: the artifact's {kind} were matched to the original's by values, but the values barely "
                    f"decide: {details}. The match, and so the verdict, may be wrong; name the tensors with {flag} NAME=TENSOR."
                )
            undecided = [name for name, m in getattr(self, kind).items() if m.how == UNDECIDED]
            if undecided:
                messages.append(f"the original's {kind} {', '.join(undecided)} could not be matched by values: the artifact did not run.")
        return messages

    def to_json(self) -> dict:
        return {kind: {name: m.to_json() for name, m in getattr(self, kind).items()} for kind in ("inputs", "outputs")}


# --- what names and shapes decide ------------------------------------------------------------------


def plan_inputs(model: Shapes, artifact: Shapes, user_map=(), max_trials: int | None = MAX_INPUT_TRIALS) -> TensorPlan:
    """As plan_outputs; every artifact input must be fed, and the groups must be small enough to try every assignment
    (at most max_trials; None: no limit, for uses that never run the trials)."""
    plan = _plan("inputs", model, artifact, user_map)
    fed = {m.tensor for m in plan.decided.values()} | {t for _, tensors in plan.groups for t in tensors}
    unfed = [t for t in artifact if t not in fed]
    if unfed:
        raise UsageError(f"the artifact's inputs {_listing(artifact, unfed)} stand for none of the original's inputs "
                         f"({_listing(model)}); give --input-map NAME=TENSOR.")
    trials = math.prod(math.factorial(len(names)) for names, _ in plan.groups)
    if max_trials is not None and trials > max_trials:
        groups = "; ".join(f"{_listing(model, names)} and the artifact's {_listing(artifact, tensors)}" for names, tensors in plan.groups)
        raise UsageError(
            f"the original's inputs cannot be matched to the artifact's by names or shapes ({groups}), and trying all "
            f"{trials} assignments is more than edgezoo tries ({max_trials}); give --input-map NAME=TENSOR for them."
        )
    return plan


def plan_outputs(model: Shapes, artifact: Shapes, user_map=()) -> TensorPlan:
    """The user's map first, then equal names, then shapes; what is left in groups of same-shaped tensors.
    The artifact may have outputs the original lacks (they are not checked)."""
    return _plan("outputs", model, artifact, user_map)


def _plan(kind: str, model: Shapes, artifact: Shapes, user_map) -> TensorPlan:
    decided = _user_map(kind, model, artifact, user_map)
    used = {m.tensor for m in decided.values()}
    for name in model:
        if name not in decided and name in artifact and name not in used:
            decided[name] = Match(name, BY_NAME)
            used.add(name)
    names = [n for n in model if n not in decided]
    tensors = [t for t in artifact if t not in used]
    order = tuple(model)
    if len(names) == 1 and len(tensors) == 1:  # a lone tensor: a shape that differs is for parity to report
        decided[names[0]] = Match(tensors[0], BY_SHAPE if _fits(model[names[0]], artifact[tensors[0]]) else ONLY_ONE)
        return TensorPlan(kind, order, decided)
    groups = []
    for group_names, group_tensors in _same_shape_groups(model, artifact, names, tensors):
        if len(group_tensors) < len(group_names) or (kind == "inputs" and len(group_tensors) != len(group_names)):
            raise UsageError(
                f"cannot match the original's {kind} {_listing(model, group_names)} one to one with the artifact's "
                f"{_listing(artifact, group_tensors) or 'none'} (the names differ; the artifact's {kind}: {_listing(artifact)}). "
                f"Give --{kind[:-1]}-map NAME=TENSOR, or export the artifact with the original signature's names."
            )
        if kind == "inputs" and not all(_fits(model[n], artifact[t]) for n in group_names for t in group_tensors):
            raise UsageError(f"the original's inputs {_listing(model, group_names)} and the artifact's {_listing(artifact, group_tensors)} "
                             "cannot be told apart by names or shapes, and not every pairing fits; give --input-map NAME=TENSOR.")
        if len(group_names) == 1 and len(group_tensors) == 1:
            decided[group_names[0]] = Match(group_tensors[0], BY_SHAPE)
        else:
            groups.append((tuple(group_names), tuple(group_tensors)))
    return TensorPlan(kind, order, decided, tuple(groups))


def _user_map(kind: str, model: Shapes, artifact: Shapes, user_map) -> dict[str, Match]:
    """NAME=TENSOR pairs (a dict or a sequence of pairs) checked against both sides."""
    flag = f"--{kind[:-1]}-map"
    decided = {}
    for name, tensor in user_map.items() if isinstance(user_map, dict) else user_map:
        if name in decided:
            raise UsageError(f"{flag} gives '{name}' twice ({name}={decided[name].tensor} and {name}={tensor}); the original's {kind}: "
                             f"{_listing(model)}.")
        if name not in model:
            raise UsageError(f"{flag} {name}={tensor}: '{name}' is not one of the original's {kind}: {_listing(model)}.")
        if tensor not in artifact:
            raise UsageError(f"{flag} {name}={tensor}: '{tensor}' is not one of the artifact's {kind}: {_listing(artifact)}.")
        twice = [other for other, match in decided.items() if match.tensor == tensor]
        if twice:
            raise UsageError(f"{flag} maps both '{twice[0]}' and '{name}' to '{tensor}'; each of the artifact's {kind} stands "
                             f"for one of the original's ({_listing(model)}).")
        if not _fits(model[name], artifact[tensor]):
            raise UsageError(f"{flag} {name}={tensor}: '{name}' {_shape(model[name])} and '{tensor}' {_shape(artifact[tensor])} "
                             f"differ in shape; the artifact's {kind}: {_listing(artifact)}.")
        decided[name] = Match(tensor, BY_MAP)
    return decided


def _same_shape_groups(model: Shapes, artifact: Shapes, names: list[str], tensors: list[str]) -> list[tuple[list, list]]:
    """Connected groups of names and tensors, linked where shapes fit (dynamic dimensions fit any size)."""
    groups: list[tuple[list, set]] = []
    for name in names:
        fitting = {t for t in tensors if _fits(model[name], artifact[t])}
        linked = [g for g in groups if g[1] & fitting]
        groups = [g for g in groups if g not in linked]
        groups.append(([n for g in linked for n in g[0]] + [name], fitting.union(*(g[1] for g in linked))))
    return [(group_names, [t for t in tensors if t in group_tensors]) for group_names, group_tensors in groups]


def _fits(a: tuple, b: tuple) -> bool:
    """Same rank, and equal sizes past the batch where both are known."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a[1:], b[1:]))


def _shape(shape: tuple) -> str:
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def _listing(shapes: Shapes, names=None) -> str:
    return ", ".join(f"{name} {_shape(shapes[name])}" for name in (shapes if names is None else names))


# --- what values decide ----------------------------------------------------------------------------


def resolve(inputs: TensorPlan, outputs: TensorPlan, reference: dict[str, np.ndarray], run: Run) -> tuple[Matching, dict[str, np.ndarray]]:
    """Every input and output matched, and the artifact's outputs under the chosen inputs (keyed by its tensors).
    Runs the artifact once, or once per assignment of same-shaped inputs."""
    trials = []
    for assignment in _input_assignments(inputs):
        produced = run(assignment)
        output_matches = _match_outputs(outputs, reference, produced)
        total = sum(pair_error(reference[name], produced.get(m.tensor)) for name, m in output_matches.items())
        trials.append((total, assignment, output_matches, produced))
    best_total, best, output_matches, produced = min(trials, key=lambda trial: trial[0])
    input_matches = dict(inputs.decided)
    for names, _ in inputs.groups:
        for name in names:
            others = [(total, assignment[name]) for total, assignment, _, _ in trials if assignment[name] != best[name]]
            alternative_error, alternative = min(others)
            input_matches[name] = Match(best[name], BY_VALUES, best_total, best_total, alternative, alternative_error)
    return Matching(_in_model_order(inputs, input_matches), output_matches), produced


def undecided(inputs: TensorPlan, outputs: TensorPlan) -> Matching:
    """The matching to report when the artifact could not run: groups paired in the order listed, marked undecided."""
    def matches(plan):
        return {name: plan.decided.get(name) or Match(tensor, UNDECIDED) for name, tensor in plan.in_order().items()}

    return Matching(matches(inputs), matches(outputs))


def pair_error(reference: np.ndarray, produced: np.ndarray | None) -> float:
    """Relative L2 error of one candidate pair, capped so that non-finite values and shape mismatches rank last."""
    if produced is None or reference.shape != produced.shape:
        return ERROR_CAP
    error = relative_l2_error(reference, produced)
    return error if math.isfinite(error) and error < ERROR_CAP else ERROR_CAP


def _input_assignments(plan: TensorPlan):
    fixed = {name: m.tensor for name, m in plan.decided.items()}
    orders = [[dict(zip(names, order)) for order in itertools.permutations(tensors)] for names, tensors in plan.groups]
    for choice in itertools.product(*orders):
        yield {**fixed, **{name: tensor for part in choice for name, tensor in part.items()}}


def _match_outputs(plan: TensorPlan, reference: dict[str, np.ndarray], produced: dict[str, np.ndarray]) -> dict[str, Match]:
    from scipy.optimize import linear_sum_assignment

    matches = dict(plan.decided)
    for names, tensors in plan.groups:
        cost = np.array([[pair_error(reference[n], produced.get(t)) for t in tensors] for n in names])
        rows, cols = linear_sum_assignment(cost)
        total = float(cost[rows, cols].sum())
        for row, col in zip(rows, cols):
            # The best assignment that gives this name another tensor: the same problem with the chosen pair forbidden.
            forbidden = cost.copy()
            forbidden[row, col] = np.inf
            other_rows, other_cols = linear_sum_assignment(forbidden)
            alternative = tensors[other_cols[list(other_rows).index(row)]]
            matches[names[row]] = Match(tensors[col], BY_VALUES, float(cost[row, col]), total, alternative,
                                        float(forbidden[other_rows, other_cols].sum()))
    return _in_model_order(plan, matches)


def _in_model_order(plan: TensorPlan, matches: dict[str, Match]) -> dict[str, Match]:
    return {name: matches[name] for name in plan.order}

"""What a target profile imposes around a conversion, driven only by the profile's keys.

Before conversion (`prepare_model`): fixed input shapes (`input_shapes`, `fixed_batch`, --input-shape), and
the ops the device lacks (`op_set`) or runs in float only when the model is to be full-integer, named with their
layers; and, where the profile requires the GPU delegate (`require_gpu_delegate`), the ops it rejects. After conversion
(`finish_artifact`): the ops again, the GPU delegate's placement (`require_gpu_delegate`, `max_gpu_partitions`), the flash budget (`max_model_bytes`), the tensor
arena measured on the runtime plus `arena_margin` and the RAM budget (`max_arena_bytes`), and the C
sources for firmware (`emit_c_source`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Callable, ContextManager

from edgezoo.formats.base import Artifact, ConversionRequest, Quantization
from edgezoo.errors import TargetConstraintError
from edgezoo.targets.profile import TargetProfile
from edgezoo.zoo.base import LoadedModel


Step = Callable[[str], ContextManager]


def _no_step(text: str) -> ContextManager:
    return contextlib.nullcontext()


def prepare_model(model: LoadedModel, profile: TargetProfile, step: Step = _no_step, request: ConversionRequest | None = None,
                  keep_float: tuple[str, ...] = (), *, input_shapes=(), data=None) -> LoadedModel:
    """The model as the target's converter should see it; refuses what the device cannot run.

    With the conversion's request, a full-integer (int8) model is also refused for ops the device runs in float
    only, unless layers are kept in float (--keep-float), which only the converted model can tell.

    `input_shapes` (--input-shape) and the profile's input_shapes and fixed_batch fix input shapes; `data`, the
    CalibrationSet, must fit them, and its shapes are what a refusal of dynamic dimensions suggests.
    """
    from edgezoo.targets import static_shape

    given = static_shape.given_shapes(model, profile, input_shapes)
    resave = profile.format != "tflite"  # TFLite converts the traced signature itself; tf2onnx and tensorflowjs read a SavedModel
    if given or profile.fixed_batch is not None:
        shapes = static_shape.target_shapes(model, profile.name, fixed_batch=profile.fixed_batch, given=given,
                                            data_shapes=data.sample_shapes if data is not None else None)
        if data is not None:
            static_shape.check_data_shapes(shapes, data, profile.name)
        shown = ", ".join(f"{name} {static_shape.show(fixed.shape)}" for name, fixed in shapes.items())
        with step(f"{profile.name}: fixing the input shapes ({shown})"):
            model = static_shape.fix_shapes(model, {name: fixed.shape for name, fixed in shapes.items()}, resave=resave)
    if profile.format == "tflite" and (why := static_shape.tflite_needs_static_batch(model)):
        with step(f"{profile.name}: fixing the batch to 1 ({why})"):
            model = static_shape.with_batch_of_one(model, why, resave=resave)
    if profile.op_set is not None:
        from edgezoo.targets.op_check import check_before_conversion

        full_integer = request is not None and request.quantization is Quantization.INT8 and not keep_float
        kernels = " and their int8 kernels" if full_integer else ""
        with step(f"{profile.name}: checking the model's ops{kernels} against {profile.op_set} before conversion"):
            check_before_conversion(model, profile.op_set, full_integer)
    if profile.require_gpu_delegate:
        with step(f"{profile.name}: checking the model's ops against the GPU delegate before conversion"):
            check_gpu_before_conversion(model, profile)
    return model


def _gpu_advice(profile: TargetProfile) -> str:
    return ("Replace those layers with ones the GPU delegate takes, or use a profile without require_gpu_delegate and "
            "max_gpu_partitions, where those ops fall back to the CPU.")


def check_gpu_before_conversion(model: LoadedModel, profile: TargetProfile) -> None:
    """Refuse a model whose planned TFLite ops the GPU delegate's op rule rejects, naming each op, its layer and the reason.
    Partitions need the converted graph's tensors: max_gpu_partitions is checked on the artifact only."""
    from edgezoo.formats.base import layer_of
    from edgezoo.formats.placement import PlacementRequirementError, gpu_rejections_planned
    from edgezoo.targets.op_check import planned_ops

    nodes = planned_ops(model)
    rejected = gpu_rejections_planned(nodes)
    if rejected:
        named = "; ".join(f"{node.op} in {layer_of(node.node_name)} ({reason})" for node, reason in rejected[:8])
        more = f"; and {len(rejected) - 8} more" if len(rejected) > 8 else ""
        raise PlacementRequirementError(
            f"{model.name} has {len(rejected)} of {len(nodes)} op(s) the GPU delegate rejects, and target '{profile.name}' "
            f"requires every op on it (require_gpu_delegate): {named}{more}. Found before conversion, in the model lowered "
            f"to TFLite ops. {_gpu_advice(profile)}")


def check_gpu_placement(profile: TargetProfile, artifact: Artifact) -> None:
    """The converted artifact's own placement against require_gpu_delegate and max_gpu_partitions (quantisation adds
    QUANTIZE and DEQUANTIZE ops, which can split the delegated graph)."""
    from edgezoo.formats.placement import PlacementRequirementError, place

    (placement,) = place("tflite", artifact.path)
    broken = []
    if profile.require_gpu_delegate and placement.rejected:
        broken.append(f"{len(placement.rejected)} op(s) fall back to the CPU, and require_gpu_delegate is set")
    if profile.max_gpu_partitions is not None and placement.partitions > profile.max_gpu_partitions:
        broken.append(f"{placement.partitions} partitions, over max_gpu_partitions = {profile.max_gpu_partitions}")
    if not broken:
        return
    named = "; ".join(f"{op.op} #{op.index} {op.name} ({op.reason}; {', '.join(op.dtypes)})" for op in placement.rejected[:8])
    raise PlacementRequirementError(
        f"the converted {artifact.path.name} ({artifact.quantization.value}) does not meet target '{profile.name}''s GPU "
        f"requirement: {placement.summary()}; {' and '.join(broken)}. Rejected: {named or 'none'}. {_gpu_advice(profile)}",
        summary=placement.summary(), size_bytes=artifact.size_bytes)


def finish_artifact(profile: TargetProfile, artifact: Artifact, workdir: Path, step: Step = _no_step) -> Artifact:
    """Checks the converted artifact against the profile; returns it with the arena and C sources in its details."""
    if profile.op_set is not None:
        from edgezoo.targets.op_check import check_artifact

        check_artifact(artifact, profile.op_set)
    if profile.requires_gpu_placement:
        check_gpu_placement(profile, artifact)
    check_model_size(profile, artifact)
    if profile.needs_arena:
        with step(f"{profile.name}: measuring the tensor arena on {profile.runtime}"):
            artifact = _with_arena(profile, artifact)
    if profile.emit_c_source:
        from edgezoo.formats.tflite import write_c_sources

        files = write_c_sources(
            artifact.path,
            artifact.sha256,
            workdir,
            arena_measured=artifact.details["arena_bytes_measured"],
            arena_margin=profile.arena_margin,
        )
        artifact = dataclasses.replace(artifact, details={**artifact.details, "c_sources": [f.name for f in files]})
    return artifact


def check_model_size(profile: TargetProfile, artifact: Artifact) -> None:
    if profile.max_model_bytes is not None and artifact.size_bytes > profile.max_model_bytes:
        raise TargetConstraintError(
            f"the {artifact.format} model is {artifact.size_bytes:,} bytes, over target '{profile.name}''s flash budget of "
            f"{profile.max_model_bytes:,} bytes (by {artifact.size_bytes - profile.max_model_bytes:,}). "
            "Try stronger quantisation (--quantize int8), pruning, a smaller model, or a profile with a larger max_model_bytes."
        )


def _with_arena(profile: TargetProfile, artifact: Artifact) -> Artifact:
    from edgezoo.formats.tflite import arena_with_margin
    from edgezoo.formats import runner_for

    measured = runner_for(profile.runtime).measure_arena(artifact)
    arena = arena_with_margin(measured, profile.arena_margin)
    if profile.max_arena_bytes is not None and arena > profile.max_arena_bytes:
        raise TargetConstraintError(
            f"the model needs a {arena:,}-byte tensor arena ({measured:,} bytes measured on {profile.runtime} plus a "
            f"{profile.arena_margin:.0%} margin), over target '{profile.name}''s RAM budget of {profile.max_arena_bytes:,} bytes "
            f"(by {arena - profile.max_arena_bytes:,}). Try a smaller input size or a narrower model (e.g. a lower alpha), "
            "or a profile with a larger max_arena_bytes."
        )
    details = {**artifact.details, "arena_bytes": arena, "arena_bytes_measured": measured, "arena_margin": profile.arena_margin}
    return dataclasses.replace(artifact, details=details)

"""`edgezoo targets list|show`: the target profiles."""

from __future__ import annotations

from edgezoo.cli.console import Console
from edgezoo.cli.flags import common_flags


def add(subparsers) -> None:
    parser = subparsers.add_parser("targets", help="list and show target profiles", description="Target profiles: the contract with a device.")
    targets = parser.add_subparsers(dest="targets_command", metavar="TARGETS_COMMAND", required=True)
    listing = targets.add_parser("list", help="the built-in target profiles")
    common_flags(listing)
    listing.set_defaults(handler=_run_targets_list)
    show = targets.add_parser("show", help="every setting of a profile, with what it extends (and its op set)")
    show.add_argument("name", help="a built-in profile name or a path to a .toml profile")
    common_flags(show)
    show.set_defaults(handler=_run_targets_show)


def _run_targets_list(args, console: Console) -> int:
    from edgezoo.targets import builtin_profiles, resolve_profile

    profiles = [resolve_profile(name) for name in builtin_profiles()]
    rows = [f"{'TARGET':16} {'FORMAT':7} {'RUNTIME':13} {'QUANT':13} DESCRIPTION"]
    rows += [f"{p.name:16} {p.format:7} {p.runtime:13} {p.quantization.value:13} {p.description}" for p in profiles]
    console.result({"targets": [p.to_json() for p in profiles]}, "\n".join(rows))
    return 0


def _run_targets_show(args, console: Console) -> int:
    from edgezoo.targets import resolve_profile
    from edgezoo.targets.op_check import op_set

    profile = resolve_profile(args.name)
    data = profile.to_json()
    ops = sorted(op_set(profile.op_set).supported_ops()) if profile.op_set else None
    data["op_set_ops"] = ops
    lines = [f"{profile.name}  ({profile.path})", f"  {profile.description}"]
    if profile.extends:
        lines.append(f"  extends: {' -> '.join(profile.extends)}")
    for key, value in data.items():
        if key in ("name", "description", "extends", "tolerances", "op_set_ops") or value in (None, {}, False):
            continue
        if key == "arena_margin" and not profile.needs_arena:
            continue
        lines.append(f"  {key} = {value:_}" if isinstance(value, int) and not isinstance(value, bool) else f"  {key} = {value}")
    for mode, limits in data["tolerances"].items():
        lines.append(f"  tolerances.{mode}: " + ", ".join(f"{k} {v:g}" for k, v in limits.items()))
    if ops:
        lines.append(f"  {profile.op_set} supports {len(ops)} ops: {', '.join(ops)}")
    console.result(data, "\n".join(lines))
    return 0

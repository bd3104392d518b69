"""`edgezoo zoo list|info|pull`: the models edgezoo can load, and the cache."""

from __future__ import annotations

from edgezoo.cli.console import Console
from edgezoo.cli.flags import common_flags, load_options, zoo_access_flags


def add(subparsers) -> None:
    parser = subparsers.add_parser("zoo", help="list, describe and fetch models", description="The models edgezoo can load, and the cache.")
    zoo = parser.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", required=True)
    listing = zoo.add_parser("list", help="models on offer (bundled and Keras applications)")
    listing.add_argument("--task", help="only models for this task (e.g. classification)")
    listing.add_argument("--max-params", metavar="N", help="only models with at most N parameters (e.g. 5M, 500k)")
    common_flags(listing)
    listing.set_defaults(handler=_run_zoo_list)
    for name, handler, text in (("info", _run_zoo_info, "inputs, preprocessing, parameters, size and licence of SOURCE"),
                                ("pull", _run_zoo_pull, "fetch SOURCE's files into the cache and verify them")):
        sub = zoo.add_parser(name, help=text)
        sub.add_argument("source", help="a bundled model, keras:NAME[?options], hub:HANDLE, or a path")
        zoo_access_flags(sub)
        common_flags(sub)
        sub.set_defaults(handler=handler)


def _run_zoo_list(args, console: Console) -> int:
    from edgezoo.zoo import catalog

    limit = catalog.parse_count(args.max_params) if args.max_params else None
    entries = catalog.list_models(task=args.task, max_parameters=limit)
    rows = [f"{'SOURCE':32} {'PARAMS':>12} {'INPUT':>12}  {'TASK':15} LICENCE"]
    for e in entries:
        shape = "x".join(map(str, e.input_shape)) if e.input_shape else "-"
        params = f"{e.parameters:,}" if e.parameters else "-"
        rows.append(f"{e.source:32} {params:>12} {shape:>12}  {e.task or '-':15} {e.license or 'unknown'}")
    console.result({"models": [e.to_json() for e in entries]}, "\n".join(rows) + f"\n{len(entries)} models")
    return 0


def _run_zoo_info(args, console: Console) -> int:
    from edgezoo.zoo import catalog

    with console.step(f"loading {args.source}"):
        info = catalog.model_info(args.source, load_options(args, console))
    lines = [f"{info['name']}  ({info['source']})"]
    lines += [f"  input  {s['name']}: {s['shape']} {s['dtype']}" for s in info["inputs"]]
    lines += [f"  output {s['name']}: {s['shape']} {s['dtype']}" for s in info["outputs"]]
    lines.append(f"  preprocessing: {info['preprocessing']['description']}")
    lines.append(f"  parameters: {info['parameters']:,}   SavedModel size: {info['size_bytes'] / 1e6:.1f} MB")
    lines.append(f"  task: {info['task'] or '-'}   labels: {info['labels'] or '-'}   weights licence: {info['license'] or 'unknown'}")
    lines += [f"  file {f['path']} ({f['verification']})" for f in info["files"]]
    console.result(info, "\n".join(lines))
    return 0


def _run_zoo_pull(args, console: Console) -> int:
    from edgezoo.zoo import catalog

    with console.step(f"fetching {args.source}"):
        pulled = catalog.pull(args.source, load_options(args, console))
    lines = [f"{pulled['name']}: ready"] + [f"  {f['path']}\n    from {f['origin']}; {f['verification']}" for f in pulled["files"]]
    if not pulled["files"]:
        lines.append("  nothing to fetch: the model is local or bundled")
    console.result(pulled, "\n".join(lines))
    return 0

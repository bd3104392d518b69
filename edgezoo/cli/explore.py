"""`edgezoo explore`: an artifact's graph in Google's Model Explorer, with edgezoo's per-op overlays loaded."""

from __future__ import annotations

from edgezoo.cli.console import Console
from edgezoo.cli.flags import common_flags


def add(subparsers) -> None:
    parser = subparsers.add_parser(
        "explore",
        help="open an artifact's graph in Model Explorer with per-op overlays (precision, quantisation SNR, placement, latency)",
        description="Start Model Explorer (ai-edge-model-explorer) on 127.0.0.1 with ARTIFACT's graph and the node-data "
        "overlays beside it (explorer/*.json, made from the report.json beside the artifact when missing): each op's "
        "precision, its quantisation SNR where measured, where each op runs, and (ONNX) each op's time on this host's CPU. "
        "Prints the address; Ctrl+C stops it. Model Explorer reads .tflite and .onnx artifacts (TF.js has no adapter).",
    )
    parser.add_argument("artifact", help="a .tflite or .onnx edgezoo made (its report.json beside it brings the overlays)")
    parser.add_argument("--port", type=int, metavar="N", help="the port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="print the address only; do not open a browser")
    common_flags(parser)
    parser.set_defaults(handler=run)


def run(args, console: Console) -> int:
    from edgezoo.errors import UsageError
    from edgezoo.formats.inspect import artifact_kind, artifact_path
    from edgezoo.reports import explorer

    path = artifact_path(args.artifact)  # no such file: UsageError
    artifact_kind(path)  # not an artifact at all: UsageError
    if explorer.artifact_format(path) not in explorer.ADAPTERS:
        raise UsageError(explorer.unsupported(path))
    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port number: give 1-65535, or leave it out for a free one.")
    nodes = explorer.graph_nodes(path)  # an unreadable file fails here, with words, not in the page
    overlays = []
    for node_data in explorer.node_data_paths(path):
        try:
            explorer.check_node_data(node_data, nodes)
            overlays.append(node_data)
        except UsageError as exc:
            console.warn(f"{exc} Left out.")
    if not overlays:
        console.warn(f"no overlays for '{path}' (no {explorer.FOLDER}/ and no report.json beside it): the graph opens bare.")
    server = explorer.ExplorerServer(path, overlays, port=args.port)
    with server:
        console.result({"url": server.url, "artifact": str(path), "node_data": [str(p) for p in overlays]},
                       f"Model Explorer: {server.url}\n  overlays: {', '.join(p.stem for p in overlays) or 'none'}\n"
                       "  Ctrl+C stops the server.")
        if not args.no_browser:
            import webbrowser

            webbrowser.open_new_tab(server.url)
        try:
            code = server.wait()
        except KeyboardInterrupt:  # Ctrl+C is how one stops it: the server closes on the way out, nothing else to undo
            print("Model Explorer stopped.", flush=True)
            return 0
        return 0 if code == 0 else 4

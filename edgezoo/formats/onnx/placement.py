"""Which execution provider ONNX Runtime assigns each node of an .onnx, as onnxruntime itself logs it.

At verbose log level a session logs its node placements when it is created (session_state.cc,
VerifyEachNodeIsAssignedToAnEp): `All nodes placed on [CPUExecutionProvider]. Number of nodes: 5` when one provider
takes everything, otherwise ` Node(s) placed on [<EP>]. Number of nodes: N` per provider followed by one
`  <OpType> (<node name>)` line per node. That text goes to fd 2 and is parsed here. Graph optimisations are turned
off for this session so the placed nodes are the file's own nodes (fusion would rename and merge them); the providers
are those the installed onnxruntime offers (on this machine CPUExecutionProvider only, plus Azure, which takes no
nodes), which `Placement.details["providers"]` records.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgezoo.errors import RuntimeFailure
from edgezoo.formats.placement import OpPlacement, Placement, captured_fd, read_bytes

BACKEND = "ONNX Runtime"
_ALL = re.compile(r"All nodes placed on \[(\w+)\]\. Number of nodes: (\d+)")
_SOME = re.compile(r"Node\(s\) placed on \[(\w+)\]\. Number of nodes: (\d+)")
_NODE = re.compile(r"\]\s{2,}(\S+) \((.*)\)\s*$")  # after the log prefix "...VerifyEachNodeIsAssignedToAnEp]"


def parse_placements(text: str) -> tuple[str | None, dict[str, str]]:
    """(the provider that took every node, or None; node name -> provider when the log lists nodes)."""
    lines = [line for line in text.splitlines() if "VerifyEachNodeIsAssignedToAnEp" in line]
    everything, by_node, provider = None, {}, None
    for line in lines:
        if match := _ALL.search(line):
            everything = match.group(1)
        elif match := _SOME.search(line):
            provider = match.group(1)
        elif provider and (match := _NODE.search(line)):
            by_node[match.group(2)] = provider
    return everything, by_node


def place(artifact: str | Path | bytes, providers: tuple[str, ...] | None = None) -> Placement:
    import onnx
    import onnxruntime

    data = read_bytes(artifact)
    model = onnx.load_from_string(data)
    available = tuple(onnxruntime.get_available_providers())
    wanted = list(providers or available)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 0  # verbose: the only level at which the placements are logged
    options.log_verbosity_level = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    with captured_fd(2) as text:
        try:
            onnxruntime.InferenceSession(data, options, providers=wanted)
        except Exception as exc:  # onnxruntime's own exception types are not exported
            error = exc
        else:
            error = None
    if error is not None:
        raise RuntimeFailure(f"ONNX Runtime cannot load the model to place its nodes: {error}") from error
    everything, by_node = parse_placements(text[0])
    if everything is None and not by_node:
        raise RuntimeFailure("ONNX Runtime logged no node placements at verbose level: this onnxruntime "
                             f"({onnxruntime.__version__}) may log them differently; placement is unknown.")
    placements = []
    for index, node in enumerate(model.graph.node):
        provider = everything or by_node.get(node.name, "")
        placements.append(OpPlacement(index=index, op=node.op_type, name=node.name, placed_on=provider or "none",
                                      reason="" if provider else "not in ONNX Runtime's placement log"))
    taken = sorted({p.placed_on for p in placements if p.accepted})
    return Placement(
        backend=BACKEND, ops=tuple(placements), partitions=None,
        source=f"onnxruntime {onnxruntime.__version__} verbose node placement log (graph optimisations off)",
        notes=(f"providers offered: {', '.join(wanted)}; CPU only on this machine" if set(available) <= {"CPUExecutionProvider", "AzureExecutionProvider"}
               else f"providers offered: {', '.join(wanted)}",),
        details={"providers": wanted, "providers_used": taken},
    )

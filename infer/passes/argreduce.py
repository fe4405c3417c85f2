"""ArgMin / ArgMax without keepdims, then Unsqueeze on the same axis: one ArgMin that keeps it.

torch exports `argmin(d, dim).unsqueeze(dim)` (the vector-quantised restorers' codebook pick,
before the one-hot ScatterElements) as exactly that pair. The index tensor is int64, which the
GPU's layout ops refuse (ops/shape.py: only float tensors are copied); keeping the axis in
the ArgMin makes the pair one kernel and no copy. Run before folding, on the graph as
imported: only the axis attributes and a constant `axes` input are read.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Node


def _axes(graph: Graph, node: Node) -> list[int] | None:
    if len(node.inputs) > 1 and node.inputs[1]:
        const = graph.constants.get(node.inputs[1])
        return None if const is None else [int(a) for a in np.asarray(const).reshape(-1)]
    axes = node.attrs.get("axes")
    return None if axes is None else [int(a) for a in axes]


def keep_arg_axis(graph: Graph) -> None:
    """Rewrites `graph` in place (the copy a specialisation works on)."""
    consumers = graph.consumers()
    gone: set[int] = set()
    for node in graph.nodes:
        if node.op_type not in ("ArgMin", "ArgMax") or node.domain:
            continue
        if int(node.attrs.get("keepdims", 1)):
            continue
        out = node.outputs[0]
        users = consumers.get(out, [])
        if out in graph.outputs or len(users) != 1 or users[0].op_type != "Unsqueeze":
            continue
        unsqueeze = users[0]
        # the same axis number names the same place: a negative one counts from the end of
        # the input, and of the unsqueezed output, whose rank is the input's
        if _axes(graph, unsqueeze) != [int(node.attrs.get("axis", 0))]:
            continue
        node.attrs["keepdims"] = 1
        node.outputs[0] = unsqueeze.outputs[0]
        gone.add(id(unsqueeze))
    if gone:
        graph.nodes = [n for n in graph.nodes if id(n) not in gone]

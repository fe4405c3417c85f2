"""Small graph edits the rewriting passes share."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Node
from ..ops.registry import Value


def rename_input(graph: Graph, old: str, new: str) -> None:
    """Every node that read `old` reads `new`."""
    for n in graph.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]


def single_consumer(
    graph: Graph, name: str, consumers: dict[str, list[Node]] | None = None
) -> Node | None:
    """The one node reading `name`, if exactly one does and it is not a graph output. A pass
    that asks for every node passes `consumers` (graph.consumers(), made once): made per call,
    a chain of thousands of nodes took quadratic time."""
    if name in graph.outputs:
        return None
    users = (graph.consumers() if consumers is None else consumers).get(name, [])
    return users[0] if len(users) == 1 else None


def add_const(graph: Graph, values: dict[str, Value], name: str, arr: np.ndarray) -> str:
    """A new constant tensor (weights of a rewritten node, a reshape target)."""
    graph.constants[name] = arr
    values[name] = Value(arr.shape, arr, arr.dtype)
    return name


def scalar_const(values: dict[str, Value], name: str) -> float | None:
    """The value of a one-element constant, else None."""
    v = values.get(name)
    if v is None or v.const is None or np.size(v.const) != 1:
        return None
    return float(np.asarray(v.const, np.float64).reshape(-1)[0])


def remove_dead_nodes(graph: Graph) -> None:
    live = set(graph.outputs)
    kept: list[Node] = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs if o):
            kept.append(node)
            live.update(i for i in node.inputs if i)
    graph.nodes = kept[::-1]

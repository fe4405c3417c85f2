"""Strided views into the products: copies that only move elements around become strides.

The products (MatMul, Einsum, the fused Attention) read every operand at arbitrary element
strides from an offset (ops/products.py). So a chain of Transposes and single-index Gathers
in front of one is no kernel: window attention's `qkv.permute(2, 0, 3, 1, 4)` then
`qkv[0]`, `qkv[1]`, `qkv[2]`, and `k.transpose(-2, -1)`, all become (offset, strides) into
the qkv projection's output. And a product whose only reader is a Transpose (`(attn @
v).transpose(1, 2)`) writes the transposed tensor directly. Runs after passes.layouts, when
every tensor's strides are known; the copies left without readers are dropped.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Node
from ..layout import logical_strides
from ..ops.registry import Value
from .edit import remove_dead_nodes, single_consumer

# product op -> the inputs it reads through views
PRODUCTS = {"MatMul": (0, 1), "Einsum": (0, 1), "Attention": (0, 1, 2)}


def _strides(values: dict[str, Value], name: str) -> list[int]:
    v = values[name]
    return logical_strides(v.shape, v.layout)


def _view(
    name: str, values: dict[str, Value], producers: dict[str, Node]
) -> tuple[str, int, list[int]] | None:
    """(root tensor, element offset, strides over `name`'s axes) through the Transposes and
    single-index Gathers that made `name`; None when there are none."""
    steps: list[tuple[str, list[int]]] = []  # ("perm", perm) / ("gather", [axis, index])
    t = name
    while True:
        p = producers.get(t)
        if p is None or values[p.inputs[0]].const is not None:
            break
        if p.op_type == "Transpose":
            rank = len(values[p.inputs[0]].shape)
            perm = p.attrs.get("perm")
            steps.append(
                ("perm", [int(x) % rank for x in perm] if perm else list(range(rank))[::-1])
            )
        elif p.op_type == "Gather":
            index = values[p.inputs[1]].const
            if index is None or np.ndim(index) != 0:
                break
            steps.append(("gather", [int(p.attrs.get("axis", 0)), int(index)]))
        else:
            break
        t = p.inputs[0]
    if not steps:
        return None
    shape = list(values[t].shape)
    strides = _strides(values, t)
    offset = 0
    for kind, arg in reversed(steps):
        if kind == "perm":
            shape, strides = [shape[x] for x in arg], [strides[x] for x in arg]
        else:
            axis, i = arg[0] % len(shape), arg[1]
            i = i + shape[axis] if i < 0 else i
            offset += i * strides[axis]
            del shape[axis], strides[axis]
    if tuple(shape) != values[name].shape:
        return None
    return t, offset, strides


def fold_views(graph: Graph, values: dict[str, Value]) -> None:
    producers = graph.producers()
    for node in graph.nodes:
        inputs = PRODUCTS.get(node.op_type, ())
        views = {}
        for k in inputs:
            name = node.inputs[k] if k < len(node.inputs) else ""
            view = _view(name, values, producers) if name else None
            if view is not None:
                root, offset, strides = view
                views[k] = (name, offset, strides)  # the logical tensor, read from root
                node.inputs[k] = root
        if views:
            node.attrs["_views"] = views
    for node in list(graph.nodes):
        if node.op_type not in PRODUCTS or "_out_view" in node.attrs:
            continue
        y = node.outputs[0]
        t = single_consumer(graph, y)
        if t is None or t.op_type != "Transpose" or t.outputs[0] in graph.outputs:
            continue
        rank = len(values[y].shape)
        perm = [int(x) % rank for x in t.attrs.get("perm", list(range(rank))[::-1])]
        ts = _strides(values, t.outputs[0])
        inverse = [perm.index(a) for a in range(rank)]
        node.attrs["_out_view"] = (y, [ts[inverse[a]] for a in range(rank)])
        node.outputs = [t.outputs[0]]
        graph.nodes.remove(t)
    remove_dead_nodes(graph)

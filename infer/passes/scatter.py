"""In-place slice assignment, as exported, turned back into Slice + Concat.

torch exports `x[:, :k] = conv(x[:, :k])` (RealPLKSR's partial large-kernel conv, in every
block) as a ScatterND whose indices are a Range / Expand grid built from the tensor's shape:
constant once the input size is known, and naming a contiguous block of one axis with every
other leading axis taken whole. That is a Concat of the untouched parts of the data with the
updates, which the engine runs as copies it already has (Slice, Concat) instead of a scatter
kernel with its slot table. Anything else (a reduction, a strided or shuffled index set, a
flattened index list) stays a ScatterND (ops/indexing.py).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Node
from ..ops.registry import Value
from .edit import add_const


def _block(indices: np.ndarray, data_shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(axis, start, stop) when `indices` is the row-major grid of a contiguous block of one
    axis of `data_shape`, every other indexed axis whole; None otherwise."""
    q = indices.shape[-1]
    if indices.ndim != q + 1 or q > len(data_shape):
        return None
    dims = np.array(data_shape[:q], np.int64)
    idx = np.where(indices < 0, indices + dims, indices).astype(np.int64)
    differ = [k for k in range(q) if indices.shape[k] != data_shape[k]]
    if len(differ) > 1:
        return None
    axis = differ[0] if differ else 0
    n = indices.shape[axis]
    if n == 0:
        return None
    start = int(idx.reshape(-1, q)[0, axis])
    ranges = [np.arange(d) for d in data_shape[:q]]
    ranges[axis] = np.arange(start, start + n)
    grid = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1)
    if start + n > data_shape[axis] or not np.array_equal(idx, grid):
        return None
    return axis, start, start + n


def _slice(
    graph: Graph,
    values: dict[str, Value],
    nodes: list[Node],
    scatter: Node,
    data: str,
    axis: int,
    lo: int,
    hi: int,
) -> str:
    """A Slice node of `data`'s [lo, hi) along `axis`, appended to `nodes`: its output."""
    base = f"{scatter.name}/slice{lo}"
    consts = [
        add_const(graph, values, f"{base}/{k}", np.array([v], np.int64))
        for k, v in (("starts", lo), ("ends", hi), ("axes", axis))
    ]
    out = f"{base}/out"
    shape = values[data].shape
    values[out] = Value((*shape[:axis], hi - lo, *shape[axis + 1 :]), None, values[data].dtype)
    nodes.append(Node("Slice", base, [data, *consts], [out]))
    return out


def scatter_to_concat(graph: Graph, values: dict[str, Value]) -> None:
    """Each ScatterND (reduction none) that writes a contiguous block becomes a Concat of
    Slices of its data around its updates."""
    new_nodes: list[Node] = []
    for node in graph.nodes:
        if node.op_type != "ScatterND" or node.attr("reduction", "none") != "none":
            new_nodes.append(node)
            continue
        data, ind, upd = node.inputs
        indices = values[ind].const
        shape = values[data].shape
        block = None if indices is None else _block(np.asarray(indices), shape)
        if block is None or (block[1] == 0 and block[2] == shape[block[0]]):
            new_nodes.append(node)  # a whole-tensor overwrite: nothing to save
            continue
        axis, start, stop = block
        parts = [upd]
        if start > 0:
            parts.insert(0, _slice(graph, values, new_nodes, node, data, axis, 0, start))
        if stop < shape[axis]:
            parts.append(_slice(graph, values, new_nodes, node, data, axis, stop, shape[axis]))
        new_nodes.append(Node("Concat", node.name, parts, list(node.outputs), {"axis": axis}))
    graph.nodes = new_nodes

"""Gather, Expand and Tile: copies that pick or repeat elements of a GPU tensor.

On constants they fold with numpy (Gather is the exporters' favourite shape-chain op). On the
GPU they are shape.wgsl copies: Gather with one index (`qkv[0]` of window attention) or an
arithmetic progression of indices is an affine view; any other constant index table (HAT's
`nn.Unfold`, exported as two Gathers with Range-built tables) is read from a buffer.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Node
from .common import broadcast_shape, broadcast_strides, grid_for, normalize_axis
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register
from .shape import (
    affine_copy,
    check_not_empty,
    copy_dispatch,
    data_binding,
    ints,
    require_float,
    tensor_index,
)

# ---- Gather ------------------------------------------------------------------------------


def _gather_axis(node: Node, rank: int) -> int:
    return normalize_axis(int(node.attr("axis", 0)), rank)


def _gather_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins, 1)
    data = ins[0].shape
    if ins[1].const is None:
        raise NotSupported("indices must be constant (computed from the input size at most)")
    axis = _gather_axis(node, len(data))
    return [(*data[:axis], *np.shape(ins[1].const), *data[axis + 1 :])]


def _gather_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    data = np.asarray(a[0])
    axis = _gather_axis(node, data.ndim)
    idx = np.asarray(a[1]).astype(np.int64)
    n = data.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise NotSupported(f"index out of range [{-n}, {n - 1}]")
    return [np.take(data, np.where(idx < 0, idx + n, idx), axis=axis)]


def _progression(idx: np.ndarray) -> tuple[int, int] | None:
    """(start, step) when the indices are a scalar or a 1-D arithmetic progression."""
    flat = idx.reshape(-1)
    if idx.ndim == 0:
        return int(flat[0]), 0
    if idx.ndim != 1 or flat.size == 0:
        return None
    step = int(flat[1] - flat[0]) if flat.size > 1 else 0
    if np.array_equal(flat, flat[0] + step * np.arange(flat.size)):
        return int(flat[0]), step
    return None


def _gather_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x = node.inputs[0]
    shape = ctx.shape(x)
    check_not_empty(node, shape)
    check_not_empty(node, ctx.shape(node.outputs[0]))
    axis = _gather_axis(node, len(shape))
    idx = np.asarray(ctx.require_const(node.inputs[1], "indices")).astype(np.int64)
    n = shape[axis]
    if idx.min() < -n or idx.max() >= n:
        raise NotSupported(f"index out of range [{-n}, {n - 1}]")
    idx = np.where(idx < 0, idx + n, idx)
    xs = ctx.strides(x)
    prog = _progression(idx)
    if prog is not None:
        start, step = prog
        steps = [*xs[:axis], *([step * xs[axis]] if idx.ndim else []), *xs[axis + 1 :]]
        return affine_copy(node, ctx, start * xs[axis], steps)
    table = ctx.add_const(f"{node.name}/indices", idx.astype(np.int32).ravel())
    variables = {
        "kind": "gather",
        "axis": axis,
        "q": idx.ndim,
        "table_strides": [math.prod(idx.shape[j + 1 :]) for j in range(idx.ndim)],
        "outer": xs[:axis],
        "axis_stride": xs[axis],
        "inner": xs[axis + 1 :],
    }
    bindings = [data_binding(ctx, node, x), Binding("const", table)]
    return [copy_dispatch(node, ctx, variables, bindings)]


register(
    "Gather",
    infer=_gather_infer,
    evaluate=_gather_eval,
    build=_gather_build,
    const_inputs=(1,),
    any_layout=True,
)


# ---- Expand ------------------------------------------------------------------------------


def _expand_shape(node: Node, shape: tuple[int, ...], target: np.ndarray | None) -> tuple:
    dims = ints(target)
    if dims is None:
        raise NotSupported("shape must be a constant")
    return broadcast_shape(shape, tuple(dims))


def _expand_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins, 1)
    return [_expand_shape(node, ins[0].shape, ins[1].const)]


def _expand_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(a[0])
    return [np.broadcast_to(x, _expand_shape(node, x.shape, a[1])).copy()]


def _expand_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x, y = node.inputs[0], node.outputs[0]
    return affine_copy(node, ctx, 0, broadcast_strides(ctx.shape(x), ctx.shape(y), ctx.layout(x)))


register(
    "Expand",
    infer=_expand_infer,
    evaluate=_expand_eval,
    build=_expand_build,
    const_inputs=(1,),
    any_layout=True,
)


# ---- Tile --------------------------------------------------------------------------------


def _repeats(node: Node, rank: int, reps: np.ndarray | None) -> list[int]:
    r = ints(reps)
    if r is None:
        raise NotSupported("repeats must be a constant")
    if len(r) != rank or any(v < 0 for v in r):
        raise NotSupported(f"repeats {r} for a rank-{rank} input")
    return r


def _tile_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins, 1)
    shape = ins[0].shape
    reps = _repeats(node, len(shape), ins[1].const)
    return [tuple(d * r for d, r in zip(shape, reps, strict=True))]


def _tile_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(a[0])
    return [np.tile(x, _repeats(node, x.ndim, a[1]))]


def _tile_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x = node.inputs[0]
    shape = ctx.shape(x)
    check_not_empty(node, ctx.shape(node.outputs[0]))
    variables = {"kind": "tile", "in_mod": list(shape), "in_strides": ctx.strides(x)}
    return [copy_dispatch(node, ctx, variables, [data_binding(ctx, node, x)])]


register(
    "Tile",
    infer=_tile_infer,
    evaluate=_tile_eval,
    build=_tile_build,
    const_inputs=(1,),
    any_layout=True,
)


# ---- ScatterND ---------------------------------------------------------------------------

SCATTER_REDUCTIONS = ("none", "add", "mul", "max", "min")


def _scatter_reduction(node: Node, opset: int) -> str:
    """The reduction attribute, checked against the opset that defines it (add and mul since
    16, max and min since 18)."""
    reduction = str(node.attr("reduction", "none"))
    since = {"none": 11, "add": 16, "mul": 16, "max": 18, "min": 18}.get(reduction)
    if since is None:
        raise NotSupported(f"reduction {reduction!r} (onnx defines {list(SCATTER_REDUCTIONS)})")
    if opset < since:
        raise NotSupported(f"reduction {reduction!r} needs opset {since}, the model has {opset}")
    return reduction


def _scatter_rows(data_shape: tuple[int, ...], indices: np.ndarray) -> np.ndarray:
    """The update rows' indices as (rows, q), negative ones wrapped, or NotSupported naming
    the first one out of range."""
    q = indices.shape[-1]
    if not 0 < q <= len(data_shape):
        raise NotSupported(f"indices of depth {q} into a rank-{len(data_shape)} tensor")
    idx = indices.reshape(-1, q).astype(np.int64)
    dims = np.array(data_shape[:q], np.int64)
    bad = (idx < -dims) | (idx >= dims)
    if bad.any():
        row = int(np.argwhere(bad.any(axis=1))[0][0])
        raise NotSupported(f"index {idx[row].tolist()} out of range for shape {list(data_shape)}")
    result: np.ndarray = np.where(idx < 0, idx + dims, idx)
    return result


def _scatter_nd_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _scatter_reduction(node, opset)
    require_float(node, [ins[0], ins[2]])
    data, indices, updates = ins
    if indices.const is None:
        raise NotSupported("indices must be constant (computed from the input size at most)")
    q = indices.shape[-1] if indices.shape else 0
    want = (*indices.shape[:-1], *data.shape[q:])
    if tuple(updates.shape) != want:
        raise NotSupported(f"updates of shape {list(updates.shape)}, expected {list(want)}")
    return [data.shape]


def _scatter_nd_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    data, updates = np.array(a[0]), np.asarray(a[2])
    reduction = _scatter_reduction(node, opset)
    idx = _scatter_rows(data.shape, np.asarray(a[1]))
    upd = updates.reshape(idx.shape[0], *data.shape[idx.shape[1] :])
    combine = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}
    for j in range(idx.shape[0]):  # in order: duplicates apply one after another
        where = tuple(idx[j])
        data[where] = upd[j] if reduction == "none" else combine[reduction](data[where], upd[j])
    return [data]


def _scatter_nd_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    """One pass over the output: each element reads its data value and folds in the update
    rows that name its slot (a CSR table built here, so no atomics and a fixed order)."""
    x, u, y = node.inputs[0], node.inputs[2], node.outputs[0]
    shape = ctx.shape(x)
    check_not_empty(node, shape)
    reduction = _scatter_reduction(node, 18)
    idx = _scatter_rows(shape, np.asarray(ctx.require_const(node.inputs[1], "indices")))
    q = idx.shape[1]
    slot_strides = [math.prod(shape[k + 1 : q]) for k in range(q)]
    slots = math.prod(shape[:q])
    slot_of = idx @ np.array(slot_strides, np.int64)
    order = np.argsort(slot_of, kind="stable")  # rows of one slot stay in their given order
    starts = np.searchsorted(slot_of[order], np.arange(slots + 1)).astype(np.int32)
    m = len(ctx.shape(node.inputs[1])) - 1  # updates' leading axes walk the rows
    us = ctx.strides(u)
    bases = np.zeros(len(order), np.int64)
    for k, coord in enumerate(np.unravel_index(order, ctx.shape(node.inputs[1])[:-1])):
        bases += coord * us[k]
    table = ctx.add_const(f"{node.name}/slots", np.concatenate([starts, bases.astype(np.int32)]))
    out = tensor_index(ctx, y)
    grid, pitch = grid_for(out["total"])
    variables = {
        "out": out,
        "pitch": pitch,
        "q": q,
        "x_strides": ctx.strides(x),
        "slot_strides": slot_strides,
        "inner_strides": us[m:],
        "rows_at": slots + 1,
        "reduction": reduction,
    }
    bindings = [
        data_binding(ctx, node, x),
        data_binding(ctx, node, u),
        Binding("const", table),
        Binding("out", y),
    ]
    return [Dispatch("scatter.wgsl", variables, bindings, grid, node.name)]


register(
    "ScatterND",
    since=11,
    infer=_scatter_nd_infer,
    evaluate=_scatter_nd_eval,
    build=_scatter_nd_build,
    const_inputs=(1,),
    any_layout=True,
)

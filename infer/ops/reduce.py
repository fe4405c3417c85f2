"""Reductions: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
ReduceSumSquare, ReduceLogSumExp (and the global pools in pool.py).

reduce.wgsl: one invocation per output element looping over the reduced extent, or one
workgroup per output element with a shared-memory tree when the extent is large. Each output
element starts at its kept coordinates and walks the reduced axes by their strides, so any
axes of a tensor in either layout reduce in place (the channel axis of an image for a
written-out LayerNorm; the last axis of a row-major token tensor; F.normalize's L2 norm).
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Node
from .common import grid_for, index_vars, normalize_axis
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register

REDUCE = "reduce.wgsl"
REDUCE_WG = 64
LOOP_LIMIT = 256  # reduced extents above this get a workgroup per output element

# op type -> (accumulate kind, finish kind) of reduce.wgsl
REDUCE_OPS = {
    "ReduceMean": "mean",
    "ReduceSum": "sum",
    "ReduceMax": "max",
    "ReduceMin": "min",
    "ReduceProd": "prod",
    "ReduceL1": "l1",
    "ReduceL2": "l2",
    "ReduceSumSquare": "sumsquare",
    "ReduceLogSumExp": "logsumexp",
}


def reduce_dispatch(
    node: Node,
    ctx: BuildContext,
    x: str,
    y: str,
    axes: list[int],
    keepdims: bool,
    op: str,
) -> Dispatch:
    """Reduce `axes` of x into y with op (a value of REDUCE_OPS, no axes: a copy)."""
    in_shape = ctx.shape(x)
    rank = len(in_shape)
    xs = ctx.strides(x)
    kept = [a for a in range(rank) if a not in axes]
    out_axes = list(range(rank)) if keepdims else kept
    out_strides = [0 if a in axes else xs[a] for a in out_axes]
    extents = [in_shape[a] for a in axes]
    extent = math.prod(extents)
    red = [
        {"n": in_shape[a], "div": math.prod(extents[j + 1 :]), "stride": xs[a]}
        for j, a in enumerate(axes)
        if in_shape[a] > 1
    ]
    out = index_vars(ctx.shape(y), layout=ctx.layout(y))
    if 0 in in_shape or out["total"] == 0:
        raise NotSupported(f"{node.op_type} on an empty tensor")
    wg = extent > LOOP_LIMIT
    grid, pitch = grid_for(out["total"], 1 if wg else 64)
    variables = {
        "out": out,
        "pitch": pitch,
        "op": op,
        "wg": REDUCE_WG if wg else 0,
        "extent": extent,
        "red": red,
        "out_strides": out_strides,
    }
    flops = float(math.prod(in_shape))
    return Dispatch(
        REDUCE, variables, [Binding("in", x), Binding("out", y)], grid, node.name, flops
    )


def reduce_axes(node: Node, rank: int, axes_input: np.ndarray | None) -> list[int] | None:
    """Sorted reduced axes (an input from opset 18, 13 for ReduceSum; an attribute before);
    None means the op is an identity (noop_with_empty_axes)."""
    if len(node.inputs) > 1 and node.inputs[1]:
        if axes_input is None:
            raise NotSupported("axes must be constant")
        axes = [int(a) for a in np.asarray(axes_input).reshape(-1)]
    else:
        axes = [int(a) for a in node.attr("axes", None) or []]
    if not axes:
        return None if int(node.attr("noop_with_empty_axes", 0)) else list(range(rank))
    norm = sorted({normalize_axis(a, rank) for a in axes})
    if len(norm) != len(axes):
        raise NotSupported(f"repeated axes {axes}")
    return norm


def _reduce_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    dtype = ins[0].const.dtype if ins[0].const is not None else ins[0].dtype
    if np.dtype(dtype).kind != "f":
        raise NotSupported(f"{node.op_type} on a {np.dtype(dtype).name} tensor on the GPU")
    shape = ins[0].shape
    axes = reduce_axes(node, len(shape), ins[1].const if len(ins) > 1 else None)
    if axes is None:
        return [shape]
    if int(node.attr("keepdims", 1)):
        return [tuple(1 if a in axes else d for a, d in enumerate(shape))]
    return [tuple(d for a, d in enumerate(shape) if a not in axes)]


def numpy_reduce(x: np.ndarray, op: str, axes: tuple[int, ...], keep: bool) -> np.ndarray:
    xd = x.astype(np.float64) if x.dtype.kind == "f" else x
    with np.errstate(all="ignore"):
        if op == "mean":
            return np.mean(xd, axis=axes, keepdims=keep)
        if op == "sum":
            return np.sum(xd, axis=axes, keepdims=keep)
        if op == "max":
            return np.max(xd, axis=axes, keepdims=keep)
        if op == "min":
            return np.min(xd, axis=axes, keepdims=keep)
        if op == "prod":
            return np.prod(xd, axis=axes, keepdims=keep)
        if op == "l1":
            return np.sum(np.abs(xd), axis=axes, keepdims=keep)
        if op == "l2":
            return np.sqrt(np.sum(xd * xd, axis=axes, keepdims=keep))
        if op == "sumsquare":
            return np.sum(xd * xd, axis=axes, keepdims=keep)
        return np.log(np.sum(np.exp(xd), axis=axes, keepdims=keep))


def _reduce_eval(node: Node, arrays: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    axes = reduce_axes(node, x.ndim, arrays[1] if len(arrays) > 1 else None)
    if axes is None:
        return [x.copy()]
    keep = bool(int(node.attr("keepdims", 1)))
    if x.size == 0 and REDUCE_OPS[node.op_type] in ("max", "min"):
        raise NotSupported(f"{node.op_type} of an empty tensor")
    y = numpy_reduce(x, REDUCE_OPS[node.op_type], tuple(axes), keep)
    return [np.asarray(y).astype(x.dtype)]


def _reduce_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x = node.inputs[0]
    shape = ctx.shape(x)
    axes_input = ctx.const(node.inputs[1]) if len(node.inputs) > 1 else None
    axes = reduce_axes(node, len(shape), axes_input)
    keep = bool(int(node.attr("keepdims", 1)))
    op = REDUCE_OPS[node.op_type]
    return [reduce_dispatch(node, ctx, x, node.outputs[0], axes or [], keep, op)]


register(
    list(REDUCE_OPS),
    infer=_reduce_infer,
    evaluate=_reduce_eval,
    build=_reduce_build,
    const_inputs=(1,),
    any_layout=True,
)

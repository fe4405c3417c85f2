"""BatchNormalization (inference), InstanceNormalization and ReduceMean.

BatchNormalization that was not folded into a conv is a per-channel affine map, 4 channels
per invocation. InstanceNormalization is two dispatches: a statistics kernel with one
workgroup per (batch, block of 4 channels) reducing over space in shared memory (mean, then
the variance about it), writing per-(n, c) coefficients to a scratch tensor; then the same
affine kernel as BatchNormalization, fully parallel. ReduceMean (and the global pools in
pool.py) use reduce.wgsl: one invocation per output element looping over the reduced
extent, or one workgroup per output element when that extent is large.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Node
from ..layout import logical_strides, pad4, physical_size
from .common import grid_for, index_vars, normalize_axis
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register

NORM = "norm.wgsl"
REDUCE = "reduce.wgsl"
STATS_WG = 256  # threads per InstanceNormalization statistics workgroup
REDUCE_WG = 64
LOOP_LIMIT = 256  # reduced extents above this get a workgroup per output element


def _require_float(node: Node, v: Value) -> None:
    if np.dtype(v.dtype).kind != "f":
        raise NotSupported(f"{node.op_type} on a {np.dtype(v.dtype).name} tensor")


def _affine_dispatch(
    node: Node, x: str, y: str, shape: tuple[int, ...], params: Binding, per_batch: bool
) -> Dispatch:
    """y = (x - p[3k]) * p[3k+1] + p[3k+2] per vec4 of channels, k = c4 (+ n * C4)."""
    count = physical_size(shape) // 4
    grid, pitch = grid_for(count)
    c4 = pad4(shape[1]) // 4
    variables = {
        "kind": "affine",
        "count": count,
        "pitch": pitch,
        "c4": c4,
        "per_batch": per_batch,
        "batch_stride": math.prod(shape[2:]) * c4,
        "p_tensor": params.kind == "in",  # statistics computed on the GPU, in tensor storage
    }
    return Dispatch(NORM, variables, [Binding("in", x), params, Binding("out", y)], grid, node.name)


def _per_channel(values: list[np.ndarray], c: int) -> np.ndarray:
    """Pack per-channel vectors as [c4][len(values)] vec4s, pad lanes zero."""
    out = np.zeros((pad4(c) // 4, len(values), 4), np.float32)
    for j, v in enumerate(values):
        padded = np.zeros(pad4(c), np.float32)
        padded[:c] = np.asarray(v, np.float32).reshape(c)
        out[:, j, :] = padded.reshape(-1, 4)
    return out


# ---- BatchNormalization ------------------------------------------------------------------


def _bn_check(node: Node) -> None:
    if int(node.attr("training_mode", 0)):
        raise NotSupported("training-mode BatchNormalization (inference only)")
    if len([o for o in node.outputs if o]) > 1:
        raise NotSupported("BatchNormalization running-statistics outputs (inference only)")
    if not int(node.attr("spatial", 1)):
        raise NotSupported("BatchNormalization with spatial=0")


def _bn_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _bn_check(node)
    _require_float(node, ins[0])
    if len(ins[0].shape) < 2:
        raise NotSupported(f"BatchNormalization on a rank-{len(ins[0].shape)} tensor")
    return [ins[0].shape]


def _bn_coefficients(
    node: Node, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    eps = float(node.attr("epsilon", 1e-5))
    scale, bias, mean, var = (
        np.asarray(a, np.float64).reshape(-1) for a in (scale, bias, mean, var)
    )
    return mean, scale / np.sqrt(var + eps), bias


def _bn_eval(node: Node, arrays: list, opset: int) -> list[np.ndarray]:
    _bn_check(node)
    x = np.asarray(arrays[0])
    mean, a, b = _bn_coefficients(node, *arrays[1:5])
    shape = (1, -1, *([1] * (x.ndim - 2)))
    y = (x - mean.reshape(shape)) * a.reshape(shape) + b.reshape(shape)
    return [y.astype(x.dtype)]


def _bn_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    what = ("scale", "bias", "mean", "var")
    consts = [
        ctx.require_const(n, f"BatchNormalization {w}")
        for n, w in zip(node.inputs[1:5], what, strict=True)
    ]
    mean, a, b = _bn_coefficients(node, *consts)
    params = ctx.add_const(f"{node.name}/affine", _per_channel([mean, a, b], shape[1]))
    return [_affine_dispatch(node, x, y, shape, Binding("const", params), False)]


register(
    "BatchNormalization",
    infer=_bn_infer,
    evaluate=_bn_eval,
    build=_bn_build,
    const_inputs=(1, 2, 3, 4),
)


# ---- InstanceNormalization ---------------------------------------------------------------


def _in_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _require_float(node, ins[0])
    if len(ins[0].shape) < 3:
        raise NotSupported(f"InstanceNormalization on a rank-{len(ins[0].shape)} tensor")
    return [ins[0].shape]


def _in_eval(node: Node, arrays: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    eps = float(node.attr("epsilon", 1e-5))
    axes = tuple(range(2, x.ndim))
    xd = x.astype(np.float64)
    mean = xd.mean(axis=axes, keepdims=True)
    var = ((xd - mean) ** 2).mean(axis=axes, keepdims=True)
    shape = (1, -1, *([1] * (x.ndim - 2)))
    scale = np.asarray(arrays[1], np.float64).reshape(shape)
    bias = np.asarray(arrays[2], np.float64).reshape(shape)
    return [((xd - mean) / np.sqrt(var + eps) * scale + bias).astype(x.dtype)]


def _in_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    n, c = shape[0], shape[1]
    c4 = pad4(c) // 4
    size = math.prod(shape[2:])
    scale = ctx.require_const(node.inputs[1], "InstanceNormalization scale")
    bias = ctx.require_const(node.inputs[2], "InstanceNormalization bias")
    params = ctx.add_const(f"{node.name}/scale_bias", _per_channel([scale, bias], c))
    stats = f"{y}#instnorm_stats"
    ctx.values[stats] = Value((n * c4 * 3 * 4,))
    groups = n * c4
    grid, pitch = grid_for(groups, 1)
    variables = {
        "kind": "stats",
        "groups": groups,
        "pitch": pitch,
        "c4": c4,
        "size": size,
        "wg": STATS_WG,
        "eps": float(node.attr("epsilon", 1e-5)),
    }
    bindings = [Binding("in", x), Binding("const", params), Binding("out", stats)]
    return [
        Dispatch(NORM, variables, bindings, grid, f"{node.name}/stats"),
        _affine_dispatch(node, x, y, shape, Binding("in", stats), True),
    ]


register(
    "InstanceNormalization",
    infer=_in_infer,
    evaluate=_in_eval,
    build=_in_build,
    const_inputs=(1, 2),
)


# ---- reductions --------------------------------------------------------------------------


def reduce_dispatch(
    node: Node,
    ctx: BuildContext,
    x: str,
    y: str,
    in_shape: tuple[int, ...],
    axes: list[int],
    keepdims: bool,
    op: str,
) -> Dispatch:
    """Reduce `axes` of x into y with op "mean" | "max" | "sum" (no axes: a copy)."""
    rank = len(in_shape)
    xs = logical_strides(in_shape)
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
    out = index_vars(ctx.shape(y))
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
    return Dispatch(REDUCE, variables, [Binding("in", x), Binding("out", y)], grid, node.name)


def _reduce_axes(node: Node, rank: int, axes_input: np.ndarray | None) -> list[int] | None:
    """Sorted reduced axes; None means the op is an identity (noop_with_empty_axes)."""
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


def _reduce_mean_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _require_float(node, ins[0])
    shape = ins[0].shape
    axes = _reduce_axes(node, len(shape), ins[1].const if len(ins) > 1 else None)
    if axes is None:
        return [shape]
    if int(node.attr("keepdims", 1)):
        return [tuple(1 if a in axes else d for a, d in enumerate(shape))]
    return [tuple(d for a, d in enumerate(shape) if a not in axes)]


def _reduce_mean_eval(node: Node, arrays: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    axes = _reduce_axes(node, x.ndim, arrays[1] if len(arrays) > 1 else None)
    if axes is None:
        return [x.copy()]
    keep = bool(int(node.attr("keepdims", 1)))
    y = np.mean(x.astype(np.float64), axis=tuple(axes), keepdims=keep)
    return [np.asarray(y).astype(x.dtype)]


def _reduce_mean_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x = node.inputs[0]
    shape = ctx.shape(x)
    axes_input = ctx.const(node.inputs[1]) if len(node.inputs) > 1 else None
    axes = _reduce_axes(node, len(shape), axes_input)
    keep = bool(int(node.attr("keepdims", 1)))
    return [reduce_dispatch(node, ctx, x, node.outputs[0], shape, axes or [], keep, "mean")]


register(
    "ReduceMean",
    infer=_reduce_mean_infer,
    evaluate=_reduce_mean_eval,
    build=_reduce_mean_build,
    const_inputs=(1,),
)

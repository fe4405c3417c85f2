"""Normalisations: BatchNormalization (inference), InstanceNormalization, LayerNormalization
(and the channel LayerNorm that NAFNet, SAFMN and Omni-SR write out, which passes.fuse turns
into one node), Softmax and LogSoftmax.

BatchNormalization that was not folded into a conv is a per-channel affine map, 4 channels
per invocation. InstanceNormalization is two dispatches: a statistics kernel with one
workgroup per (batch, block of 4 channels) reducing over space in shared memory (mean, then
the variance about it), writing per-(n, c) coefficients to a scratch tensor; then the same
affine kernel as BatchNormalization, fully parallel.

LayerNorm and Softmax normalise short rows (the C = 16..180 channels of a token, the 64..256
keys of an attention window): rows.wgsl gives each row one invocation, which reads it twice
(statistics, then the store) at the tensor's strides, so the normalised axes may be the
last ones of a row-major tensor or the channel axis of an image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..graph import Node
from ..layout import pad4, physical_size
from .common import grid_for, normalize_axis, pad_lanes_dispatch, row_plan
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register

NORM = "norm.wgsl"
ROWS = "rows.wgsl"
STATS_WG = 256  # threads per InstanceNormalization statistics workgroup


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


# ---- LayerNormalization, the fused channel LayerNorm, Softmax ----------------------------


def norm_axes(node: Node, rank: int, opset: int) -> list[int]:
    """The normalised axes: LayerNormalization's [axis, rank); Softmax's one axis (opset 13)
    or the coerced-2-D [axis, rank) before; the fused LayerNorm's `axes`."""
    if node.op_type == "LayerNormAxes":
        return sorted({normalize_axis(int(a), rank) for a in node.attr("axes")})
    default = -1 if node.op_type == "LayerNormalization" or opset >= 13 else 1
    axis = normalize_axis(int(node.attr("axis", default)), rank)
    if node.op_type in ("Softmax", "LogSoftmax") and opset >= 13:
        return [axis]
    return list(range(axis, rank))


def _ln_params(
    node: Node, shape: tuple[int, ...], axes: list[int], scale: np.ndarray, bias: np.ndarray | None
) -> np.ndarray:
    """[scale..., bias...] over the normalised elements, row-major (broadcast as ONNX does)."""
    rank = len(shape)
    full = tuple(shape[a] if a in axes else 1 for a in range(rank))
    extent = [shape[a] for a in axes]

    def spread(arr: np.ndarray) -> np.ndarray:
        a = np.asarray(arr, np.float32)
        if node.op_type == "LayerNormalization":
            return np.broadcast_to(a, tuple(extent)).reshape(-1)
        a = a.reshape((1,) * (rank - a.ndim) + a.shape)
        return np.broadcast_to(a, full).reshape(-1)

    try:
        s = spread(scale)
        b = spread(bias) if bias is not None else np.zeros_like(s)
    except ValueError as e:
        raise NotSupported(f"scale/bias do not broadcast to the normalised axes: {e}") from e
    return np.concatenate([s, b]).astype(np.float32)


def _rows_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _require_float(node, ins[0])
    shape = ins[0].shape
    if not shape:
        raise NotSupported(f"{node.op_type} of a scalar")
    axes = norm_axes(node, len(shape), opset)
    if node.op_type == "LayerNormalization" and len(ins) > 1 and ins[1].const is None:
        raise NotSupported("scale must be a constant")
    stats = tuple(1 if a in axes else d for a, d in enumerate(shape))
    return [shape, stats, stats][: len(node.outputs)]


def _rows_eval(node: Node, arrays: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    xd = x.astype(np.float64)
    axes = tuple(norm_axes(node, x.ndim, opset))
    if node.op_type in ("Softmax", "LogSoftmax"):
        m = xd.max(axis=axes, keepdims=True)
        e = np.exp(xd - m)
        s = e.sum(axis=axes, keepdims=True)
        y = e / s if node.op_type == "Softmax" else xd - m - np.log(s)
        return [y.astype(x.dtype)]
    eps = float(node.attr("epsilon", 1e-5))
    mean = xd.mean(axis=axes, keepdims=True)
    var = ((xd - mean) ** 2).mean(axis=axes, keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    bias = arrays[2] if len(arrays) > 2 else None
    params = _ln_params(node, x.shape, list(axes), arrays[1], bias)
    n = params.size // 2
    full = tuple(x.shape[a] if a in axes else 1 for a in range(x.ndim))
    scale, bias = params[:n].reshape(full), params[n:].reshape(full)
    y = (xd - mean) * inv * scale + bias
    return [y.astype(x.dtype), mean.astype(x.dtype), inv.astype(x.dtype)][: len(node.outputs)]


def _rows_build_for(opset: int) -> Callable[[Node, BuildContext], list[Dispatch]]:
    def build(node: Node, ctx: BuildContext) -> list[Dispatch]:
        x = node.inputs[0]
        shape = ctx.shape(x)
        if 0 in shape:
            raise NotSupported(f"{node.op_type} on an empty tensor")
        if not node.outputs[0]:
            raise NotSupported("statistics outputs without the normalised output")
        axes = norm_axes(node, len(shape), opset)
        outs = [o for o in node.outputs if o]
        strides = {"x": ctx.strides(x)}
        for role, name in zip(("y", "mean_out", "inv_out"), node.outputs, strict=False):
            if name:
                strides[role] = ctx.strides(name)
        plan = row_plan(shape, axes, strides)
        grid, pitch = grid_for(plan["rows"])
        kind = "layernorm" if "Norm" in node.op_type else node.op_type.lower()
        variables = {"kind": kind, "pitch": pitch, "eps": float(node.attr("epsilon", 1e-5))}
        variables.update(plan)
        bindings = [Binding("in", x)]
        if kind == "layernorm":
            scale = ctx.require_const(node.inputs[1], "scale")
            bias = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
            if len(node.inputs) > 2 and node.inputs[2] and bias is None:
                raise NotSupported("bias must be a constant")
            params = _ln_params(node, shape, axes, scale, bias)
            bindings.append(Binding("const", ctx.add_const(f"{node.name}/params", params)))
        bindings += [Binding("out", name) for name in outs]
        flops = 8.0 * math.prod(shape)
        out = [Dispatch(ROWS, variables, bindings, grid, node.name, flops)]
        for name in outs:
            out += pad_lanes_dispatch(name, ctx.shape(name), ctx.layout(name), node.name)
        return out

    return build


for _op, _sinces in (("LayerNormalization", (17,)), ("Softmax", (1, 13)), ("LogSoftmax", (1, 13))):
    for _since in _sinces:
        register(
            _op,
            since=_since,
            infer=_rows_infer,
            evaluate=_rows_eval,
            build=_rows_build_for(_since),
            const_inputs=(1, 2) if _op == "LayerNormalization" else (),
            any_layout=True,
        )
# the channel LayerNorm written out as ReduceMean / Sub / Pow / ReduceMean / Add / Sqrt / Div
# (/ Mul / Add), recognised by passes.fuse: LayerNormalization over `axes`, per-axis params
register(
    "LayerNormAxes",
    infer=_rows_infer,
    evaluate=_rows_eval,
    build=_rows_build_for(17),
    const_inputs=(1, 2),
    domain="ai.framesmith",
    any_layout=True,
)

"""TopK: the k largest (or smallest) elements along an axis, with their indices.

SeemoRe's mixture-of-experts routing exports `torch.topk(softmax(router(x)), k)` over a
handful of experts; the weights (Values) feed the network, the chosen experts were fixed
when it was traced. So rows are short and k is small: one invocation per row makes the k
picks in turn (kernel in shaders/ops/topk.wgsl), ties broken by the lower index as onnx
specifies and onnxruntime does. Indices are stored as floats on the GPU and come back as
int64; at fp16 storage that is exact only up to 2048, so longer rows are refused there.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Node
from .common import grid_for, normalize_axis, pad_lanes_dispatch, row_plan
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register
from .shape import require_float

FP16_EXACT = 2048  # the largest n whose every index an f16 holds exactly


def _k(node: Node, k_input: np.ndarray | None, n: int) -> int:
    """k from the K input (opset 10 on) or the attribute (opset 1), within the axis length."""
    if len(node.inputs) > 1 and node.inputs[1]:
        if k_input is None:
            raise NotSupported("K must be a constant")
        k = int(np.asarray(k_input).reshape(-1)[0])
    else:
        k = int(node.attr("k", -1))
    if not 0 <= k <= n:
        raise NotSupported(f"k={k} for an axis of length {n}")
    return k


def _axis(node: Node, rank: int) -> int:
    return normalize_axis(int(node.attr("axis", -1)), rank)


def _topk_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins, 1)
    shape = ins[0].shape
    axis = _axis(node, len(shape))
    k = _k(node, ins[1].const if len(ins) > 1 else None, shape[axis])
    out = (*shape[:axis], k, *shape[axis + 1 :])
    return [out, out]


def _topk_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    """Stable sorts give the lower index first among equals either way (no negation, which
    would wrap an unsigned tensor)."""
    x = np.asarray(a[0])
    axis = _axis(node, x.ndim)
    n = x.shape[axis]
    k = _k(node, a[1] if len(a) > 1 else None, n)
    if int(node.attr("largest", 1)):
        flipped = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
        order = np.flip(n - 1 - flipped, axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, idx, axis), idx.astype(np.int64)]


def _topk_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x = node.inputs[0]
    shape = ctx.shape(x)
    if 0 in shape:
        raise NotSupported("TopK of an empty tensor")
    axis = _axis(node, len(shape))
    n = shape[axis]
    k = _k(node, ctx.const(node.inputs[1]) if len(node.inputs) > 1 else None, n)
    roles = zip(("values", "indices"), node.outputs, strict=False)
    outs = {role: name for role, name in roles if name}
    if "indices" in outs and ctx.precision == "fp16" and n > FP16_EXACT:
        raise NotSupported(f"indices of an axis of {n} in fp16 storage (exact up to 2048)")
    if k == 0:
        raise NotSupported("k=0: empty outputs on the GPU")
    strides = {"x": ctx.strides(x), **{role: ctx.strides(name) for role, name in outs.items()}}
    plan = row_plan(shape, [axis], strides)
    grid, pitch = grid_for(plan["rows"])
    variables = {
        "pitch": pitch,
        "rows": plan["rows"],
        "kept": plan["kept"],
        "k": k,
        "n": n,
        "largest": bool(int(node.attr("largest", 1))),
        "outs": list(outs),
        "x_step": strides["x"][axis],
        **{f"{role}_step": strides[role][axis] for role in outs},
    }
    bindings = [Binding("in", x), *(Binding("out", name) for name in outs.values())]
    flops = float(k * math.prod(shape))
    out = [Dispatch("topk.wgsl", variables, bindings, grid, node.name, flops)]
    for name in outs.values():
        out += pad_lanes_dispatch(name, ctx.shape(name), ctx.layout(name), node.name)
    return out


register(
    "TopK",
    infer=_topk_infer,
    evaluate=_topk_eval,
    build=_topk_build,
    const_inputs=(1,),
    any_layout=True,
    out_dtype=(np.dtype(np.float32), np.dtype(np.int64)),
)

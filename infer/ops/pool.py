"""MaxPool, AveragePool (1-3 spatial dims) and GlobalAveragePool / GlobalMaxPool.

Windowed pools are one output element per invocation, looping over the window like the
generic conv kernel. Global pools are reductions over all spatial axes (reduce.wgsl, shared
with ReduceMean in norm.py).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..graph import Node
from ..layout import logical_strides
from .common import grid_for, index_vars
from .reduce import reduce_dispatch
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, attr_ints, register

TEMPLATE = "pool.wgsl"


def pool_geometry(node: Node, x_shape: tuple[int, ...]) -> dict:
    nsp = len(x_shape) - 2
    if not 1 <= nsp <= 3:
        raise NotSupported(f"{node.op_type} on a rank-{len(x_shape)} tensor (1-3 spatial dims)")
    k = attr_ints(node, "kernel_shape")
    if len(k) != nsp:
        raise NotSupported(f"kernel_shape {k} for {nsp} spatial dims")
    s = attr_ints(node, "strides") or [1] * nsp
    d = attr_ints(node, "dilations") or [1] * nsp
    pads = attr_ints(node, "pads") or [0] * (2 * nsp)
    auto_pad = node.attr("auto_pad", "NOTSET")
    ceil_mode = int(node.attr("ceil_mode", 0))
    ins = list(x_shape[2:])
    span = [(k[i] - 1) * d[i] + 1 for i in range(nsp)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        outs = [math.ceil(ins[i] / s[i]) for i in range(nsp)]
        pads = [0] * (2 * nsp)
        for i in range(nsp):
            total = max(0, (outs[i] - 1) * s[i] + span[i] - ins[i])
            head = total // 2 if auto_pad == "SAME_UPPER" else (total + 1) // 2
            pads[i], pads[i + nsp] = head, total - head
    elif auto_pad == "VALID":
        pads = [0] * (2 * nsp)
        outs = [(ins[i] - span[i]) // s[i] + 1 for i in range(nsp)]
    elif auto_pad in ("NOTSET", ""):
        outs = []
        for i in range(nsp):
            extent = ins[i] + pads[i] + pads[i + nsp] - span[i]
            o = (-(-extent // s[i]) if ceil_mode else extent // s[i]) + 1
            if ceil_mode and (o - 1) * s[i] >= ins[i] + pads[i]:
                o -= 1  # the last window would start in the end padding
            outs.append(o)
    else:
        raise NotSupported(f"auto_pad {auto_pad!r}")
    if any(o <= 0 for o in outs):
        raise NotSupported(f"{node.op_type} output would be empty ({outs})")
    return {"k": k, "s": s, "d": d, "pads": pads, "ins": ins, "outs": outs, "nsp": nsp}


def _check(node: Node, ins: list[Value]) -> None:
    if len([o for o in node.outputs if o]) > 1:
        raise NotSupported(f"{node.op_type}'s Indices output")
    if np.dtype(ins[0].dtype).kind != "f":
        raise NotSupported(f"{node.op_type} on a {np.dtype(ins[0].dtype).name} tensor")


def _pool_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _check(node, ins)
    x = ins[0].shape
    return [(x[0], x[1], *pool_geometry(node, x)["outs"])]


def _pool_eval(node: Node, arrays: list, opset: int) -> list[np.ndarray]:
    if len([o for o in node.outputs if o]) > 1:
        raise NotSupported(f"{node.op_type}'s Indices output")
    x = np.asarray(arrays[0])
    geo = pool_geometry(node, x.shape)
    nsp, k, s, d, pads, outs = (geo[key] for key in ("nsp", "k", "s", "d", "pads", "outs"))
    is_max = node.op_type == "MaxPool"
    include_pad = bool(int(node.attr("count_include_pad", 0)))
    # Pad generously (every window fits), marking real and padded-extent positions.
    widths = [
        (pads[i], max(0, (outs[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - x.shape[2 + i] - pads[i]))
        for i in range(nsp)
    ]
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *widths])
    real = np.pad(np.ones(x.shape[2:], bool), widths)
    extent = np.zeros(real.shape, bool)
    extent[tuple(slice(0, pads[i] + x.shape[2 + i] + pads[i + nsp]) for i in range(nsp))] = True
    acc = np.full((*x.shape[:2], *outs), -np.inf if is_max else 0.0)
    count = np.zeros(outs)
    count_pad = np.zeros(outs)
    for tap in itertools.product(*(range(kk) for kk in k)):
        sl = tuple(
            slice(tap[i] * d[i], tap[i] * d[i] + (outs[i] - 1) * s[i] + 1, s[i]) for i in range(nsp)
        )
        index: tuple[Any, ...] = (Ellipsis, *sl)
        v, r = xp[index], real[sl]
        acc = np.where(r, np.maximum(acc, v), acc) if is_max else acc + np.where(r, v, 0)
        count += r
        count_pad += extent[sl]
    if not is_max:
        acc = acc / np.maximum(count_pad if include_pad else count, 1)
    return [acc.astype(x.dtype)]


def _pool_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x, y = node.inputs[0], node.outputs[0]
    x_shape, y_shape = ctx.shape(x), ctx.shape(y)
    geo = pool_geometry(node, x_shape)
    nsp = geo["nsp"]

    def three(values: list[int], fill: int) -> list[int]:
        return [fill] * (3 - len(values)) + list(values)

    xs = logical_strides(x_shape)
    out = index_vars(y_shape)
    grid, pitch = grid_for(out["total"])
    variables = {
        "out": out,
        "pitch": pitch,
        "op": "max" if node.op_type == "MaxPool" else "avg",
        "include_pad": bool(int(node.attr("count_include_pad", 0))),
        "k": three(geo["k"], 1),
        "s": three(geo["s"], 1),
        "d": three(geo["d"], 1),
        "p": three(geo["pads"][:nsp], 0),
        "q": three(geo["pads"][nsp:], 0),
        "isz": three(geo["ins"], 1),
        "xs": [xs[0], xs[1], *three(xs[2:], 0)],
        "sp": ["0u"] * (3 - nsp) + [f"o{2 + i}" for i in range(nsp)],
    }
    return [Dispatch(TEMPLATE, variables, [Binding("in", x), Binding("out", y)], grid, node.name)]


register(["MaxPool", "AveragePool"], infer=_pool_infer, evaluate=_pool_eval, build=_pool_build)


# ---- global pools ------------------------------------------------------------------------


def _global_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _check(node, ins)
    x = ins[0].shape
    if len(x) < 3:
        raise NotSupported(f"{node.op_type} on a rank-{len(x)} tensor")
    return [(x[0], x[1], *([1] * (len(x) - 2)))]


def _global_eval(node: Node, arrays: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    axes = tuple(range(2, x.ndim))
    fn = np.max if node.op_type == "GlobalMaxPool" else np.mean
    return [fn(x, axis=axes, keepdims=True).astype(x.dtype)]


def _global_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x = node.inputs[0]
    shape = ctx.shape(x)
    op = "max" if node.op_type == "GlobalMaxPool" else "mean"
    return [reduce_dispatch(node, ctx, x, node.outputs[0], list(range(2, len(shape))), True, op)]


register(
    ["GlobalAveragePool", "GlobalMaxPool"],
    infer=_global_infer,
    evaluate=_global_eval,
    build=_global_build,
)

"""ScatterElements on the GPU: data with elements replaced (or combined) at indices along one
axis, the indices a GPU tensor.

The vector-quantised restorers make a one-hot row per pixel with
`zeros.scatter_(1, argmin(distances).unsqueeze(1), 1)`: the indices come from ArgMin
(ops/argreduce.py), computed from the picture, so they cannot be folded the way the fold-only
ScatterElements (ops/fold_only.py, opset 1-10's Scatter too) is. This registration (opset
11 on) folds with numpy when everything is constant and otherwise runs one invocation per
output element (shaders/ops/scatter_elements.wgsl): the element starts as data and walks the
index entries of its row along the axis, in order, applying every one that names it, so
duplicates combine as onnxruntime applies them (the last one wins for `none`) and nothing
needs atomics. That is m reads per element for m indices along the axis: one for a one-hot.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Node
from .common import grid_for, normalize_axis
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register
from .shape import check_not_empty, data_binding, require_float, tensor_index
from .topk import FP16_EXACT

# onnx's reductions by the opset that brings them
_SINCE = {"none": 11, "add": 16, "mul": 16, "max": 18, "min": 18}
_COMBINE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _reduction(node: Node, opset: int) -> str:
    reduction = str(node.attr("reduction", "none"))
    if _SINCE.get(reduction, opset + 1) > opset:
        raise NotSupported(f"reduction {reduction!r} at opset {opset}")
    return reduction


def _infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _reduction(node, opset)
    require_float(node, [ins[0], ins[2]])
    data, indices, updates = (v.shape for v in ins)
    if len(indices) != len(data) or tuple(updates) != tuple(indices):
        raise NotSupported(
            f"indices {list(indices)} and updates {list(updates)} must have one shape, of "
            f"data's rank {len(data)}"
        )
    axis = normalize_axis(int(node.attr("axis", 0)), len(data))
    if any(i > d for k, (i, d) in enumerate(zip(indices, data, strict=True)) if k != axis):
        raise NotSupported(f"indices {list(indices)} larger than data {list(data)}")
    const = ins[1].const
    if const is not None and const.size:
        n = data[axis]
        if (np.asarray(const) < -n).any() or (np.asarray(const) >= n).any():
            raise NotSupported(f"an index out of range for an axis of {n}")
    return [data]


def _eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    """Entry by entry in row-major order of the indices: duplicates apply in that order."""
    data, updates = np.array(a[0]), np.asarray(a[2])
    axis = normalize_axis(int(node.attr("axis", 0)), data.ndim)
    reduction = _reduction(node, opset)
    indices = np.asarray(a[1], np.int64) % data.shape[axis]
    for pos in np.ndindex(*indices.shape):
        at = (*pos[:axis], int(indices[pos]), *pos[axis + 1 :])
        u = updates[pos]
        data[at] = u if reduction == "none" else _COMBINE[reduction](data[at], u)
    return [data]


def _walk(prefix: str, strides: list[int], axis: int) -> dict:
    """The tensor's offset of a row (the axis' stride dropped) and its step along the axis."""
    return {
        f"{prefix}_strides": [0 if k == axis else s for k, s in enumerate(strides)],
        f"{prefix}_step": strides[axis],
    }


def _build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x, ind, upd = node.inputs[0], node.inputs[1], node.inputs[2]
    y = node.outputs[0]
    shape = ctx.shape(x)
    check_not_empty(node, shape)
    axis = normalize_axis(int(node.attr("axis", 0)), len(shape))
    if ctx.precision == "fp16" and ctx.const(ind) is None and shape[axis] > FP16_EXACT:
        raise NotSupported(f"GPU indices into an axis of {shape[axis]} in fp16 storage")
    ishape = ctx.shape(ind)
    out = tensor_index(ctx, y)
    grid, pitch = grid_for(out["total"])
    variables = {
        "out": out,
        "pitch": pitch,
        "axis": axis,
        "n": shape[axis],
        "m": ishape[axis],
        # a row of the output past the indices' extent on another axis keeps its data
        "limits": [(k, d) for k, d in enumerate(ishape) if k != axis and d < shape[k]],
        "x_strides": ctx.strides(x),
        **_walk("i", ctx.strides(ind), axis),
        **_walk("u", ctx.strides(upd), axis),
        "reduction": _reduction(node, 18),
    }
    bindings = [
        data_binding(ctx, node, x),
        data_binding(ctx, node, ind),
        data_binding(ctx, node, upd),
        Binding("out", y),
    ]
    flops = float(math.prod(shape) * max(1, ishape[axis]))
    return [Dispatch("scatter_elements.wgsl", variables, bindings, grid, node.name, flops)]


register(
    "ScatterElements",
    since=11,
    infer=_infer,
    evaluate=_eval,
    build=_build,
    any_layout=True,
)

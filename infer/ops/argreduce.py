"""ArgMin and ArgMax: the index of the smallest (largest) element along an axis.

The vector-quantised restorers in spandrel's registry (RestoreFormer, AdaCode, FeMaSR) pick
each pixel's codebook entry as `argmin(distances)`, distances computed from the pixel, so the
index is a GPU tensor, not a constant; it then selects a codebook row through a one-hot
ScatterElements (ops/scatter_elements.py) and a MatMul. One invocation per row walks the
axis once (shaders/ops/argreduce.wgsl). Ties go to the first index, or to the last with
`select_last_index` (opset 12), as onnx says and onnxruntime does. Indices are stored as
floats on the GPU (exact in fp16 only up to 2048: longer axes are refused there) and come
back as int64, like TopK's.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Node
from .common import grid_for, normalize_axis, pad_lanes_dispatch, row_plan
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register
from .shape import require_float
from .topk import FP16_EXACT


def _attrs(node: Node, rank: int) -> tuple[int, bool, bool]:
    """(axis, keepdims, select_last_index)."""
    axis = normalize_axis(int(node.attr("axis", 0)), rank)
    return axis, bool(int(node.attr("keepdims", 1))), bool(int(node.attr("select_last_index", 0)))


def _out_shape(shape: tuple[int, ...], axis: int, keep: bool) -> tuple[int, ...]:
    return (*shape[:axis], *((1,) if keep else ()), *shape[axis + 1 :])


def _infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins, 1)
    shape = ins[0].shape
    if not shape:
        raise NotSupported(f"{node.op_type} of a scalar")
    axis, keep, _ = _attrs(node, len(shape))
    if shape[axis] == 0:
        raise NotSupported(f"{node.op_type} along an empty axis")
    return [_out_shape(shape, axis, keep)]


def _eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(a[0])
    axis, keep, last = _attrs(node, x.ndim)
    pick = np.argmin if node.op_type == "ArgMin" else np.argmax
    # the last of equal values is the first one of the flipped axis
    flipped = x.shape[axis] - 1 - pick(np.flip(x, axis), axis=axis)
    idx = flipped if last else pick(x, axis=axis)
    idx = np.expand_dims(idx, axis) if keep else idx
    return [np.asarray(idx, np.int64)]


def _build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    if 0 in shape:
        raise NotSupported(f"{node.op_type} of an empty tensor")
    axis, keep, last = _attrs(node, len(shape))
    n = shape[axis]
    if ctx.precision == "fp16" and n > FP16_EXACT:
        raise NotSupported(f"indices of an axis of {n} in fp16 storage (exact up to 2048)")
    ys = ctx.strides(y)
    if not keep:  # the output lacks the axis: it reads as length 1 there
        ys = [*ys[:axis], 0, *ys[axis:]]
    plan = row_plan(shape, [axis], {"x": ctx.strides(x), "y": ys})
    grid, pitch = grid_for(plan["rows"])
    # a later element replaces the best one when it is strictly better, or (last index)
    # equally good
    better = ("<" if node.op_type == "ArgMin" else ">") + ("=" if last else "")
    variables = {
        "pitch": pitch,
        "rows": plan["rows"],
        "kept": plan["kept"],
        "n": n,
        "better": better,
        "x_step": ctx.strides(x)[axis],
    }
    flops = float(math.prod(shape))
    out = [Dispatch("argreduce.wgsl", variables, [Binding("in", x), Binding("out", y)], grid,
                    node.name, flops)]  # fmt: skip
    return out + pad_lanes_dispatch(y, ctx.shape(y), ctx.layout(y), node.name)


register(
    ["ArgMin", "ArgMax"],
    infer=_infer,
    evaluate=_eval,
    build=_build,
    any_layout=True,
    out_dtype=np.dtype(np.int64),
)

"""Ops that exist to compute shapes, indices and masks: folded with numpy, never run on the GPU.

Exporters build reshape targets, pad amounts and attention masks from `Shape` at run time:
SwinIR's shifted-window mask alone is about 600 nodes (ConstantOfShape, 9 ScatterND with
their Range / Expand index grids, Where) per shifted block, all constant once the input size
is known. If one of these is still present after folding (its input depends on pixel values),
the model is unsupported and the error names the node. (ScatterND also runs on GPU tensors,
as RealPLKSR's in-place slice assignment needs: it lives in indexing.py.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from onnx import helper

from ..graph import Node
from .registry import BuildContext, Dispatch, NotSupported, Value, register
from .unary import NO_ACTIVATION, unary_dispatch


def _no_shape(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    raise NotSupported("runs only on constants")


def _ints(a: Any) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _shape(node: Node, a: list, opset: int) -> list[np.ndarray]:
    shape = np.array(a[0].shape, np.int64)
    start, end = node.attr("start", 0), node.attr("end", None)
    return [shape[start:end]]


def _constant_of_shape(node: Node, a: list, opset: int) -> list[np.ndarray]:
    value = node.attr("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    dims = _ints(a[0])
    if any(d < 0 for d in dims):
        raise NotSupported(f"negative dimension in {dims}")
    return [np.full(tuple(dims), fill[0], dtype=fill.dtype)]


def _range(node: Node, a: list, opset: int) -> list[np.ndarray]:
    start, limit, delta = (np.asarray(v).item() for v in a)
    if delta == 0:
        raise NotSupported("Range with delta 0")
    return [np.arange(start, limit, delta, dtype=np.asarray(a[0]).dtype)]


# The output shape of ops whose size comes from their values: known before numpy builds them,
# so folding can refuse a terabyte-sized Range or ConstantOfShape (infer/caps.py).


def _const_of(ins: list[Value], k: int) -> np.ndarray:
    v = ins[k].const
    if v is None:
        raise NotSupported("runs only on constants")
    return np.asarray(v)


def _constant_of_shape_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in _const_of(ins, 0).reshape(-1))]


def _range_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    start, limit, delta = (float(_const_of(ins, k).reshape(-1)[0]) for k in range(3))
    if delta == 0:
        raise NotSupported("Range with delta 0")
    return [(max(0, math.ceil((limit - start) / delta)),)]


_SIZED = {
    "ConstantOfShape": _constant_of_shape_infer,
    "Range": _range_infer,
}


def _scatter_elements(node: Node, a: list, opset: int) -> list[np.ndarray]:
    data, indices, updates = np.array(a[0]), np.asarray(a[1], np.int64), np.asarray(a[2])
    axis = int(node.attr("axis", 0)) % data.ndim
    reduction = node.attr("reduction", "none")
    for pos in np.ndindex(*indices.shape):
        where = list(pos)
        where[axis] = int(indices[pos]) % data.shape[axis]
        t = tuple(where)
        if reduction == "add":
            data[t] += updates[pos]
        elif reduction == "mul":
            data[t] *= updates[pos]
        elif reduction == "max":
            data[t] = max(data[t], updates[pos])
        elif reduction == "min":
            data[t] = min(data[t], updates[pos])
        else:
            data[t] = updates[pos]
    return [data]


def _gather_elements(node: Node, a: list, opset: int) -> list[np.ndarray]:
    data, indices = np.asarray(a[0]), np.asarray(a[1], np.int64)
    axis = int(node.attr("axis", 0)) % data.ndim
    indices = np.where(indices < 0, indices + data.shape[axis], indices)
    return [np.take_along_axis(data, indices, axis)]


def _gather_nd(node: Node, a: list, opset: int) -> list[np.ndarray]:
    data, indices = np.asarray(a[0]), np.asarray(a[1], np.int64)
    b = int(node.attr("batch_dims", 0))
    if b:
        raise NotSupported("GatherND with batch_dims")
    k = indices.shape[-1]
    flat = indices.reshape(-1, k)
    out = np.stack([data[tuple(i)] for i in flat]) if len(flat) else np.zeros((0,), data.dtype)
    return [out.reshape(*indices.shape[:-1], *data.shape[k:])]


def _cumsum(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x, axis = np.asarray(a[0]), int(np.asarray(a[1]).reshape(-1)[0])
    if int(node.attr("reverse", 0)):
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=x.dtype)
    if int(node.attr("exclusive", 0)):
        y = y - x
    if int(node.attr("reverse", 0)):
        y = np.flip(y, axis)
    return [np.ascontiguousarray(y)]


def _trilu(node: Node, a: list, opset: int) -> list[np.ndarray]:
    k = int(np.asarray(a[1]).reshape(-1)[0]) if len(a) > 1 and a[1] is not None else 0
    fn = np.triu if int(node.attr("upper", 1)) else np.tril
    return [fn(np.asarray(a[0]), k)]


def _one_hot(node: Node, a: list, opset: int) -> list[np.ndarray]:
    indices, depth, values = np.asarray(a[0], np.int64), int(np.asarray(a[1]).item()), a[2]
    axis = int(node.attr("axis", -1))
    indices = np.where(indices < 0, indices + depth, indices)
    hot = np.arange(depth) == indices[..., None]
    out = np.where(hot, values[1], values[0]).astype(np.asarray(values).dtype)
    return [np.moveaxis(out, -1, axis)]


def _cast(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [np.asarray(a[0]).astype(helper.tensor_dtype_to_np_dtype(int(node.attr("to"))))]


def _cast_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    target = np.dtype(helper.tensor_dtype_to_np_dtype(int(node.attr("to"))))
    if target.kind != "f" or np.dtype(ins[0].dtype).kind != "f":
        raise NotSupported(
            f"Cast of a {np.dtype(ins[0].dtype).name} tensor to {target.name} on the GPU "
            "(float to float only)"
        )
    return [ins[0].shape]


def _cast_like(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [np.asarray(a[0]).astype(np.asarray(a[1]).dtype)]


def _cast_like_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    target = ins[1].const.dtype if ins[1].const is not None else ins[1].dtype
    if np.dtype(target).kind != "f" or np.dtype(ins[0].dtype).kind != "f":
        raise NotSupported(
            f"CastLike of a {np.dtype(ins[0].dtype).name} tensor to {np.dtype(target).name} "
            "on the GPU (float to float only)"
        )
    return [ins[0].shape]


def _cast_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    """float -> float: tensors are stored at the model's precision either way, a copy."""
    return [unary_dispatch(ctx, node.inputs[0], node.outputs[0], NO_ACTIVATION, node.name)]


_FOLD_ONLY = {
    "Shape": _shape,
    "Size": lambda node, a, opset: [np.array(a[0].size, np.int64)],
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
    "ScatterElements": _scatter_elements,
    "GatherElements": _gather_elements,
    "GatherND": _gather_nd,
    "CumSum": _cumsum,
    "Trilu": _trilu,
    "OneHot": _one_hot,
    "NonZero": lambda node, a, opset: [np.array(np.nonzero(a[0]), np.int64)],
    "IsNaN": lambda node, a, opset: [np.isnan(a[0])],
    "IsInf": lambda node, a, opset: [
        np.isinf(a[0]) & ((a[0] > 0) if int(node.attr("detect_positive", 1)) else False)
        | np.isinf(a[0]) & ((a[0] < 0) if int(node.attr("detect_negative", 1)) else False)
    ],
}

for _op, _fn in _FOLD_ONLY.items():
    # every input must be known: a graph input feeding one is asked for by value (model.py)
    # (Shape and Size read only the input's shape)
    known = () if _op in ("Shape", "Size") else (0, 1, 2, 3, 4)
    register(_op, infer=_SIZED.get(_op, _no_shape), evaluate=_fn, const_inputs=known)
register("Cast", infer=_cast_infer, evaluate=_cast, build=_cast_build, any_layout=True)
register(
    "CastLike",
    infer=_cast_like_infer,
    evaluate=_cast_like,
    build=_cast_build,
    any_layout=True,
    since=15,
)

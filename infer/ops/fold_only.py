"""Ops that exist only to compute shapes and constants: folded with numpy, never run on GPU.

If one of these is still present after folding (its input depends on pixel values), the model
is unsupported and the error names the node.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import helper

from ..graph import Node
from .registry import EvalFn, NotSupported, Value, register


def _no_shape(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    raise NotSupported("runs only on constants")


def _shape(node: Node, a: list, opset: int) -> list[np.ndarray]:
    shape = np.array(a[0].shape, np.int64)
    start, end = node.attr("start", 0), node.attr("end", None)
    return [shape[start:end]]


def _gather(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [np.take(a[0], a[1].astype(np.int64), axis=int(node.attr("axis", 0)))]


def _axes(node: Node, a: list, opset: int) -> list[int] | None:
    if len(a) > 1 and a[1] is not None:
        return [int(v) for v in np.asarray(a[1]).reshape(-1)]
    v = node.attr("axes")
    return None if v is None else [int(x) for x in v]


def _unsqueeze(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x = a[0]
    given = _axes(node, a, opset)
    if given is None:
        raise NotSupported("Unsqueeze needs axes")
    axes = sorted(ax % (x.ndim + len(given)) for ax in given)
    for ax in axes:
        x = np.expand_dims(x, ax)
    return [x]


def _squeeze(node: Node, a: list, opset: int) -> list[np.ndarray]:
    axes = _axes(node, a, opset)
    return [np.squeeze(a[0], axis=None if axes is None else tuple(axes))]


def _cast(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [a[0].astype(helper.tensor_dtype_to_np_dtype(int(node.attr("to"))))]


def _constant_of_shape(node: Node, a: list, opset: int) -> list[np.ndarray]:
    value = node.attr("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return [np.full(tuple(int(d) for d in a[0]), fill[0], dtype=fill.dtype)]


def _range(node: Node, a: list, opset: int) -> list[np.ndarray]:
    start, limit, delta = (np.asarray(v).item() for v in a)
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


def _expand_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    target = tuple(int(d) for d in _const_of(ins, 1).reshape(-1))
    try:
        return [tuple(np.broadcast_shapes(ins[0].shape, target))]
    except ValueError as e:
        raise NotSupported(f"Expand: {e}") from None


_SIZED = {
    "ConstantOfShape": _constant_of_shape_infer,
    "Range": _range_infer,
    "Expand": _expand_infer,
}


def _expand(node: Node, a: list, opset: int) -> list[np.ndarray]:
    shape = np.broadcast_shapes(a[0].shape, tuple(int(d) for d in a[1]))
    return [np.broadcast_to(a[0], shape).copy()]


def _unary(fn: Callable[[np.ndarray], Any]) -> EvalFn:
    return lambda node, a, opset: [np.asarray(fn(a[0])).astype(a[0].dtype)]


_FOLD_ONLY = {
    "Shape": _shape,
    "Size": lambda node, a, opset: [np.array(a[0].size, np.int64)],
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Cast": _cast,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
    "Expand": _expand,
    "Floor": _unary(np.floor),
    "Ceil": _unary(np.ceil),
    "Round": _unary(np.round),
    "Sqrt": _unary(np.sqrt),
    "Neg": _unary(np.negative),
    "Abs": _unary(np.abs),
    "Equal": lambda node, a, opset: [np.equal(a[0], a[1])],
    "Less": lambda node, a, opset: [np.less(a[0], a[1])],
    "Greater": lambda node, a, opset: [np.greater(a[0], a[1])],
    "Not": lambda node, a, opset: [np.logical_not(a[0])],
    "Where": lambda node, a, opset: [np.where(a[0], a[1], a[2])],
}

for _op, _fn in _FOLD_ONLY.items():
    register(_op, infer=_SIZED.get(_op, _no_shape), evaluate=_fn)

"""Slice and Pad: a window of the input, cropped or padded (constant, reflect, edge, wrap).

Both are copies on the GPU (shape.wgsl): each output element reads the input element its
window maps to, or the pad value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..graph import Node
from .common import normalize_axis
from .registry import BuildContext, Dispatch, NotSupported, Value, register
from .shape import (
    Const,
    affine_copy,
    array_const,
    check_not_empty,
    copy_dispatch,
    data_binding,
    ints,
    require_float,
    value_const,
)

# ---- Slice -------------------------------------------------------------------------------


def _slice_params(node: Node, shape: tuple[int, ...], const: Const, opset: int) -> list[range]:
    """For every axis, the range of input coordinates the output takes, in output order."""
    rank = len(shape)
    if opset < 10:
        starts = [int(v) for v in node.attr("starts", [])]
        ends = [int(v) for v in node.attr("ends", [])]
        given = node.attr("axes")
        axes: list[int] | None = None if given is None else [int(v) for v in given]
        steps: list[int] | None = None
    else:

        def get(k: int) -> list[int] | None:
            if k >= len(node.inputs) or not node.inputs[k]:
                return None
            v = ints(const(k))
            if v is None:
                raise NotSupported("starts/ends/axes/steps must be constants")
            return v

        got_starts, got_ends, axes, steps = get(1), get(2), get(3), get(4)
        if got_starts is None or got_ends is None:
            raise NotSupported("Slice needs starts and ends")
        starts, ends = got_starts, got_ends
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise NotSupported("starts, ends, axes and steps differ in length")
    ranges = [range(d) for d in shape]
    seen = set()
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        ax = normalize_axis(ax, rank)
        if ax in seen:
            raise NotSupported(f"axis {ax} repeated")
        seen.add(ax)
        if st == 0:
            raise NotSupported("step 0")
        ranges[ax] = range(*slice(s, e, st).indices(shape[ax]))
    return ranges


def _slice_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins, 1)
    return [tuple(len(r) for r in _slice_params(node, ins[0].shape, value_const(ins), opset))]


def _slice_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    ranges = _slice_params(node, a[0].shape, array_const(a), opset)
    index = tuple(slice(r.start, r.stop if r.stop >= 0 else None, r.step) for r in ranges)
    return [np.ascontiguousarray(a[0][index])]


def _slice_build_for(opset: int) -> Callable[[Node, BuildContext], list[Dispatch]]:
    def build(node: Node, ctx: BuildContext) -> list[Dispatch]:
        in_shape = ctx.shape(node.inputs[0])
        ranges = _slice_params(node, in_shape, lambda k: ctx.const(node.inputs[k]), opset)
        lst = ctx.strides(node.inputs[0])
        base = sum(r.start * s for r, s in zip(ranges, lst, strict=True) if len(r))
        return affine_copy(node, ctx, base, [r.step * s for r, s in zip(ranges, lst, strict=True)])

    return build


for _since in (1, 10):
    register(
        "Slice",
        since=_since,
        infer=_slice_infer,
        evaluate=_slice_eval,
        build=_slice_build_for(_since),
        const_inputs=(1, 2, 3, 4) if _since >= 10 else (),
        any_layout=True,
    )


# ---- Pad ---------------------------------------------------------------------------------

PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _pad_params(
    node: Node, shape: tuple[int, ...], const: Const, opset: int
) -> tuple[str, float, list[tuple[int, int]]]:
    """(mode, constant value, per-axis (begin, end) pads; negative pads crop)."""
    rank = len(shape)
    mode = node.attr("mode", "constant")
    if mode not in PAD_MODES:
        raise NotSupported(f"mode {mode!r}")
    axes = None
    pads: list[int] | None
    if opset < 11:
        pads = [int(v) for v in node.attr("pads", node.attr("paddings", []))]
        value = float(node.attr("value", 0.0))
    else:
        pads = ints(const(1))
        if pads is None:
            raise NotSupported("pads must be a constant")
        value = 0.0
        if len(node.inputs) > 2 and node.inputs[2]:
            v = const(2)
            if v is None:
                raise NotSupported("constant_value must be a constant")
            v = np.asarray(v).reshape(-1)
            value = float(v[0]) if v.size else 0.0
        if len(node.inputs) > 3 and node.inputs[3]:
            axes = ints(const(3))
            if axes is None:
                raise NotSupported("axes must be a constant")
    if axes is None:
        axes = list(range(rank))
    axes = [normalize_axis(a, rank) for a in axes]
    if len(pads) != 2 * len(axes):
        raise NotSupported(f"{len(pads)} pads for {len(axes)} axes")
    per = [(0, 0)] * rank
    for k, ax in enumerate(axes):
        per[ax] = (pads[k], pads[k + len(axes)])
    for ax, (b, e) in enumerate(per):
        if shape[ax] + b + e < 0:
            raise NotSupported(f"pads {b}, {e} crop more than axis {ax} holds")
    return mode, value, per


def _pad_axis_map(mode: str, n_in: int, begin: int, end: int) -> tuple[int, int, int]:
    """Crop first (negative pads), then pad: (pad before, crop offset, cropped length)."""
    crop = max(0, -begin)
    n = n_in - crop - max(0, -end)
    p, q = max(0, begin), max(0, end)
    if (p or q) and mode != "constant":
        if n <= 0:
            raise NotSupported(f"{mode} padding of an empty axis")
        if mode == "reflect" and max(p, q) > n - 1:
            raise NotSupported(f"reflect pad {max(p, q)} wider than the axis ({n}) minus one")
    return p, crop, n


def _pad_index(mode: str, out_len: int, p: int, crop: int, n: int) -> np.ndarray:
    """Input coordinate for each output coordinate along one axis, -1 for the constant."""
    c = np.arange(out_len) - p
    if mode == "constant":
        c = np.where((c >= 0) & (c < n), c, -1 - crop)
    elif mode == "edge":
        c = np.clip(c, 0, n - 1)
    elif mode == "reflect":
        c = np.where(c < 0, -c, c)
        c = np.where(c >= n, 2 * (n - 1) - c, c)
    else:
        c = np.mod(c, n)
    return c + crop


def _pad_out(shape: tuple[int, ...], per: list[tuple[int, int]]) -> tuple[int, ...]:
    return tuple(d + b + e for d, (b, e) in zip(shape, per, strict=True))


def _pad_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins, 1)
    mode, _, per = _pad_params(node, ins[0].shape, value_const(ins), opset)
    for d, (b, e) in zip(ins[0].shape, per, strict=True):
        _pad_axis_map(mode, d, b, e)
    return [_pad_out(ins[0].shape, per)]


def _pad_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(a[0])
    mode, value, per = _pad_params(node, x.shape, array_const(a), opset)
    out_shape = _pad_out(x.shape, per)
    idx = [
        _pad_index(mode, o, *_pad_axis_map(mode, d, b, e))
        for d, o, (b, e) in zip(x.shape, out_shape, per, strict=True)
    ]
    if x.size == 0:
        return [np.full(out_shape, value, x.dtype)]
    clipped = [np.clip(i, 0, max(d - 1, 0)) for i, d in zip(idx, x.shape, strict=True)]
    out = x[np.ix_(*clipped)] if x.ndim else x.copy()
    if mode == "constant" and x.ndim:
        mask = np.zeros(out_shape, bool)
        for k, i in enumerate(idx):
            shape = [1] * x.ndim
            shape[k] = len(i)
            mask |= (i < 0).reshape(shape)
        out = np.where(mask, np.asarray(value, x.dtype), out)
    return [np.ascontiguousarray(out, dtype=x.dtype)]


def _pad_build_for(opset: int) -> Callable[[Node, BuildContext], list[Dispatch]]:
    def build(node: Node, ctx: BuildContext) -> list[Dispatch]:
        x = node.inputs[0]
        in_shape = ctx.shape(x)
        check_not_empty(node, in_shape)
        mode, value, per = _pad_params(node, in_shape, lambda k: ctx.const(node.inputs[k]), opset)
        if not math.isfinite(value):
            raise NotSupported(f"constant_value {value}")
        lst = ctx.strides(x)
        axes = []
        for k, (d, (b, e)) in enumerate(zip(in_shape, per, strict=True)):
            p, crop, n = _pad_axis_map(mode, d, b, e)
            trivial = p == 0 and max(0, e) == 0
            axes.append(
                {"k": k, "p": p, "crop": crop, "n": n, "stride": lst[k], "trivial": trivial}
            )
        variables = {"kind": "pad", "mode": mode, "value": value, "axes": axes}
        return [copy_dispatch(node, ctx, variables, [data_binding(ctx, node, x)])]

    return build


for _since in (1, 11):
    register(
        "Pad",
        since=_since,
        infer=_pad_infer,
        evaluate=_pad_eval,
        build=_pad_build_for(_since),
        const_inputs=(1, 2, 3) if _since >= 11 else (),
        any_layout=True,
    )


# ---- Split -------------------------------------------------------------------------------


def _split_sizes(node: Node, shape: tuple[int, ...], const: Const, opset: int) -> list[int]:
    axis = normalize_axis(int(node.attr("axis", 0)), len(shape))
    n = shape[axis]
    outputs = len(node.outputs)
    sizes: list[int] | None = None
    if opset >= 13 and len(node.inputs) > 1 and node.inputs[1]:
        sizes = ints(const(1))
        if sizes is None:
            raise NotSupported("split must be a constant")
    elif node.attr("split") is not None:
        sizes = [int(v) for v in node.attr("split")]
    if sizes is None:
        parts = int(node.attr("num_outputs", outputs))
        chunk = -(-n // parts)
        sizes = [min(chunk, n - k * chunk) for k in range(parts)]
    if sum(sizes) != n or len(sizes) != outputs or any(s < 0 for s in sizes):
        raise NotSupported(f"split {sizes} of an axis of {n} into {outputs} outputs")
    return sizes


def _split_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins, 1)
    shape = ins[0].shape
    axis = normalize_axis(int(node.attr("axis", 0)), len(shape))
    out = []
    for size in _split_sizes(node, shape, value_const(ins), opset):
        s = list(shape)
        s[axis] = size
        out.append(tuple(s))
    return out


def _split_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(a[0])
    axis = normalize_axis(int(node.attr("axis", 0)), x.ndim)
    sizes = _split_sizes(node, x.shape, array_const(a), opset)
    return list(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _split_build_for(opset: int) -> Callable[[Node, BuildContext], list[Dispatch]]:
    def build(node: Node, ctx: BuildContext) -> list[Dispatch]:
        x = node.inputs[0]
        shape = ctx.shape(x)
        axis = normalize_axis(int(node.attr("axis", 0)), len(shape))
        sizes = _split_sizes(node, shape, lambda k: ctx.const(node.inputs[k]), opset)
        lst = ctx.strides(x)
        out: list[Dispatch] = []
        start = 0
        for k, size in enumerate(sizes):
            if node.outputs[k] and size:
                out += affine_copy(node, ctx, start * lst[axis], lst, out_index=k)
            start += size
        return out

    return build


for _since in (1, 13):
    register(
        "Split",
        since=_since,
        infer=_split_infer,
        evaluate=_split_eval,
        build=_split_build_for(_since),
        const_inputs=(1,) if _since >= 13 else (),
        any_layout=True,
    )

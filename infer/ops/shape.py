"""Shape and layout ops: Transpose, Reshape, Flatten, Concat, Slice, Pad, DepthToSpace...

On constants (shape chains) these fold with numpy. On the GPU every one of them is a copy:
one invocation per output physical element decodes its logical coordinates and reads the
input element it maps to. Reshape and Flatten are not free either, because the channel axis
is padded in the physical layout: they map through the logical row-major linear index.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..graph import Node
from ..layout import logical_strides, pad4, to_physical
from .common import grid_for, index_vars, normalize_axis
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register

TEMPLATE = "shape.wgsl"
MAX_CONCAT_INPUTS = 6

Const = Callable[[int], "np.ndarray | None"]  # input index -> constant value (None if unknown)


# ---- helpers -----------------------------------------------------------------------------


def _ints(a: np.ndarray | None) -> list[int] | None:
    return None if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


def _value_const(ins: list[Value]) -> Const:
    return lambda k: ins[k].const if k < len(ins) and ins[k].const is not None else None


def _array_const(arrays: list[np.ndarray | None]) -> Const:
    return lambda k: arrays[k] if k < len(arrays) else None


def _require_float(node: Node, ins: list[Value], count: int | None = None) -> None:
    """GPU tensors are float32: integer tensors may only pass through shape ops as constants."""
    for v in ins[: len(ins) if count is None else count]:
        dtype = v.const.dtype if v.const is not None else v.dtype
        if np.dtype(dtype).kind != "f":
            raise NotSupported(
                f"{node.op_type} on a {np.dtype(dtype).name} tensor that is not a constant "
                "(only float32 tensors run on the GPU)"
            )


def _rowmajor(shape: tuple[int, ...] | list[int]) -> list[int]:
    return [math.prod(shape[k + 1 :]) for k in range(len(shape))]


def _data_binding(ctx: BuildContext, node: Node, name: str) -> Binding:
    """A data input: a GPU tensor, or a float constant uploaded in the physical layout."""
    arr = ctx.const(name)
    if arr is None:
        return Binding("in", name)
    phys = to_physical(np.asarray(arr, np.float32)).ravel().astype(ctx.dtype)  # tensor storage
    return Binding("const", ctx.add_const(f"{node.name}/{name}", phys))


def _dispatch(node: Node, ctx: BuildContext, variables: dict, inputs: list[Binding]) -> Dispatch:
    y = node.outputs[0]
    out = index_vars(ctx.shape(y))
    if out["total"] == 0 or any(d == 0 for d in out["shape"]):
        raise NotSupported(f"empty output {list(out['shape'])} on the GPU")
    grid, pitch = grid_for(out["total"])
    return Dispatch(
        TEMPLATE,
        {"out": out, "pitch": pitch, **variables},
        [*inputs, Binding("out", y)],
        grid,
        node.name,
    )


def _check_not_empty(node: Node, shape: tuple[int, ...]) -> None:
    if 0 in shape:
        raise NotSupported(f"empty tensor {list(shape)} on the GPU")


# ---- Transpose ---------------------------------------------------------------------------


def _perm(node: Node, rank: int) -> list[int]:
    perm = node.attr("perm")
    if perm is None:
        return list(range(rank))[::-1]
    perm = [int(p) for p in perm]
    if sorted(p % rank if rank else p for p in perm) != list(range(rank)):
        raise NotSupported(f"perm {perm} is not a permutation of rank {rank}")
    return [p % rank for p in perm]


def _transpose_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _require_float(node, ins)
    shape = ins[0].shape
    return [tuple(shape[p] for p in _perm(node, len(shape)))]


def _transpose_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [np.transpose(a[0], _perm(node, a[0].ndim))]


def _affine(node: Node, ctx: BuildContext, base: int, strides: list[int]) -> list[Dispatch]:
    x = node.inputs[0]
    _check_not_empty(node, ctx.shape(x))
    variables = {"kind": "affine", "base": base, "steps": strides}
    return [_dispatch(node, ctx, variables, [_data_binding(ctx, node, x)])]


def _transpose_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    in_shape = ctx.shape(node.inputs[0])
    lst = logical_strides(in_shape)
    return _affine(node, ctx, 0, [lst[p] for p in _perm(node, len(in_shape))])


register("Transpose", infer=_transpose_infer, evaluate=_transpose_eval, build=_transpose_build)


# ---- Reshape / Flatten -------------------------------------------------------------------


def _reshape_target(node: Node, in_shape: tuple[int, ...], const: Const) -> tuple[int, ...]:
    spec = _ints(const(1)) if len(node.inputs) > 1 and node.inputs[1] else None
    if spec is None:
        spec = node.attr("shape")
        if spec is None:
            raise NotSupported("target shape must be a constant")
        spec = [int(v) for v in spec]
    allowzero = int(node.attr("allowzero", 0))
    out: list[int] = []
    unknown = None
    for k, d in enumerate(spec):
        if d == 0 and not allowzero:
            if k >= len(in_shape):
                raise NotSupported(f"shape {spec}: 0 at axis {k} beyond input rank")
            out.append(in_shape[k])
        elif d == -1:
            if unknown is not None:
                raise NotSupported(f"shape {spec} has more than one -1")
            unknown = k
            out.append(1)
        elif d < 0:
            raise NotSupported(f"shape {spec} has a negative dimension")
        else:
            out.append(d)
    total = math.prod(in_shape)
    if unknown is not None:
        rest = math.prod(out)
        if rest == 0 or total % rest:
            raise NotSupported(f"cannot reshape {list(in_shape)} to {spec}")
        out[unknown] = total // rest
    if math.prod(out) != total:
        raise NotSupported(f"cannot reshape {list(in_shape)} to {spec}")
    return tuple(out)


def _reshape_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _require_float(node, ins, 1)
    return [_reshape_target(node, ins[0].shape, _value_const(ins))]


def _reshape_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [a[0].reshape(_reshape_target(node, a[0].shape, _array_const(a)))]


def _flatten_shape(node: Node, shape: tuple[int, ...]) -> tuple[int, ...]:
    rank = len(shape)
    axis = int(node.attr("axis", 1))
    if not -rank <= axis <= rank:
        raise NotSupported(f"axis {axis} out of range for rank {rank}")
    axis = axis % rank if axis < 0 else axis
    return (math.prod(shape[:axis]), math.prod(shape[axis:]))


def _flatten_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _require_float(node, ins)
    return [_flatten_shape(node, ins[0].shape)]


def _flatten_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [a[0].reshape(_flatten_shape(node, a[0].shape))]


def _reshape_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    """Output coords -> logical linear index -> input coords -> input physical offset."""
    x = node.inputs[0]
    in_shape = ctx.shape(x)
    out_shape = ctx.shape(node.outputs[0])
    _check_not_empty(node, in_shape)
    variables = {
        "kind": "reshape",
        "lin": _rowmajor(out_shape),
        "in_div": _rowmajor(in_shape),
        "in_mod": list(in_shape),
        "in_strides": logical_strides(in_shape),
    }
    return [_dispatch(node, ctx, variables, [_data_binding(ctx, node, x)])]


register(
    "Reshape",
    infer=_reshape_infer,
    evaluate=_reshape_eval,
    build=_reshape_build,
    const_inputs=(1,),
)
register("Flatten", infer=_flatten_infer, evaluate=_flatten_eval, build=_reshape_build)


# ---- Concat ------------------------------------------------------------------------------


def _concat_axis(node: Node, rank: int) -> int:
    return normalize_axis(int(node.attr("axis", 1)), rank)


def _concat_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _require_float(node, ins)
    shapes = [v.shape for v in ins]
    rank = len(shapes[0])
    if rank == 0:
        raise NotSupported("Concat of scalars")
    axis = _concat_axis(node, rank)
    for s in shapes:
        if len(s) != rank or any(s[k] != shapes[0][k] for k in range(rank) if k != axis):
            raise NotSupported(f"Concat of mismatched shapes {[list(s) for s in shapes]}")
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return [tuple(out)]


def _concat_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    arrays = [np.asarray(v) for v in a if v is not None]
    return [np.concatenate(arrays, axis=_concat_axis(node, arrays[0].ndim))]


def _concat_grid(out_shape: tuple[int, ...], axis: int, lo: int, hi: int) -> dict:
    """Decode table for the output elements whose axis coordinate lies in [lo, hi).

    Coordinates come out in physical order (channels innermost, padded to 4 unless the
    channel axis is the one being split), so the grid of a single chunk is the whole output.
    """
    rank = len(out_shape)
    dims = list(out_shape)
    if rank >= 2:
        dims[1] = pad4(dims[1])
    dims[axis] = hi - lo
    order = [0, *range(2, rank), 1] if rank >= 2 else list(range(rank))
    div = [0] * rank
    step = 1
    for k in reversed(order):
        div[k] = step
        step *= dims[k]
    return {"rank": rank, "div": div, "mod": dims, "total": step}


def _concat_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    y = node.outputs[0]
    out_shape = ctx.shape(y)
    if 0 in out_shape:
        raise NotSupported(f"empty output {list(out_shape)} on the GPU")
    rank = len(out_shape)
    axis = _concat_axis(node, rank)
    out = index_vars(out_shape)
    parts = []
    start = 0
    for name in node.inputs:
        shape = ctx.shape(name)
        if shape[axis]:
            parts.append(
                {
                    "name": name,
                    "start": start,
                    "end": start + shape[axis],
                    "strides": logical_strides(shape),
                }
            )
        start += shape[axis]
    limit = ctx.limits.get("max-storage-buffers-per-shader-stage", 8) - 1
    per = max(1, min(MAX_CONCAT_INPUTS, limit))
    groups = [parts[k : k + per] for k in range(0, len(parts), per)]
    dispatches = []
    for g, group in enumerate(groups):
        lo = group[0]["start"] if g else 0
        hi = group[-1]["end"]
        if g == len(groups) - 1 and axis == 1 and rank >= 2:
            hi = pad4(out_shape[1])  # the last chunk also zeroes the channel pad lanes
        grid_vars = _concat_grid(out_shape, axis, lo, hi)
        grid, pitch = grid_for(grid_vars["total"])
        bindings = [_data_binding(ctx, node, p["name"]) for p in group]
        variables = {
            "kind": "concat",
            "out": out,
            "grid": grid_vars,
            "pitch": pitch,
            "axis": axis,
            "lo": lo,
            "parts": [{k: p[k] for k in ("start", "end", "strides")} for p in group],
        }
        dispatches.append(
            Dispatch(TEMPLATE, variables, [*bindings, Binding("out", y)], grid, f"{node.name}/{g}")
        )
    return dispatches


register("Concat", infer=_concat_infer, evaluate=_concat_eval, build=_concat_build)


# ---- Slice -------------------------------------------------------------------------------


def _slice_params(node: Node, shape: tuple[int, ...], const: Const, opset: int) -> list[range]:
    """For every axis, the range of input coordinates the output takes, in output order."""
    rank = len(shape)
    if opset < 10:
        starts = [int(v) for v in node.attr("starts", [])]
        ends = [int(v) for v in node.attr("ends", [])]
        axes = node.attr("axes")
        axes = None if axes is None else [int(v) for v in axes]
        steps = None
    else:

        def get(k: int) -> list[int] | None:
            if k >= len(node.inputs) or not node.inputs[k]:
                return None
            v = _ints(const(k))
            if v is None:
                raise NotSupported("starts/ends/axes/steps must be constants")
            return v

        starts, ends, axes, steps = get(1), get(2), get(3), get(4)
        if starts is None or ends is None:
            raise NotSupported("Slice needs starts and ends")
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
    _require_float(node, ins, 1)
    return [tuple(len(r) for r in _slice_params(node, ins[0].shape, _value_const(ins), opset))]


def _slice_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    ranges = _slice_params(node, a[0].shape, _array_const(a), opset)
    index = tuple(slice(r.start, r.stop if r.stop >= 0 else None, r.step) for r in ranges)
    return [np.ascontiguousarray(a[0][index])]


def _slice_build_for(opset: int) -> Callable[[Node, BuildContext], list[Dispatch]]:
    def build(node: Node, ctx: BuildContext) -> list[Dispatch]:
        in_shape = ctx.shape(node.inputs[0])
        ranges = _slice_params(node, in_shape, lambda k: ctx.const(node.inputs[k]), opset)
        lst = logical_strides(in_shape)
        base = sum(r.start * s for r, s in zip(ranges, lst, strict=True) if len(r))
        return _affine(node, ctx, base, [r.step * s for r, s in zip(ranges, lst, strict=True)])

    return build


for _since in (1, 10):
    register(
        "Slice",
        since=_since,
        infer=_slice_infer,
        evaluate=_slice_eval,
        build=_slice_build_for(_since),
        const_inputs=(1, 2, 3, 4) if _since >= 10 else (),
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
    if opset < 11:
        pads = [int(v) for v in node.attr("pads", node.attr("paddings", []))]
        value = float(node.attr("value", 0.0))
    else:
        pads = _ints(const(1))
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
            axes = _ints(const(3))
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
    _require_float(node, ins, 1)
    mode, _, per = _pad_params(node, ins[0].shape, _value_const(ins), opset)
    for d, (b, e) in zip(ins[0].shape, per, strict=True):
        _pad_axis_map(mode, d, b, e)
    return [_pad_out(ins[0].shape, per)]


def _pad_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x = np.asarray(a[0])
    mode, value, per = _pad_params(node, x.shape, _array_const(a), opset)
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
        _check_not_empty(node, in_shape)
        mode, value, per = _pad_params(node, in_shape, lambda k: ctx.const(node.inputs[k]), opset)
        if not math.isfinite(value):
            raise NotSupported(f"constant_value {value}")
        lst = logical_strides(in_shape)
        axes = []
        for k, (d, (b, e)) in enumerate(zip(in_shape, per, strict=True)):
            p, crop, n = _pad_axis_map(mode, d, b, e)
            trivial = p == 0 and max(0, e) == 0
            axes.append(
                {"k": k, "p": p, "crop": crop, "n": n, "stride": lst[k], "trivial": trivial}
            )
        variables = {"kind": "pad", "mode": mode, "value": value, "axes": axes}
        return [_dispatch(node, ctx, variables, [_data_binding(ctx, node, x)])]

    return build


for _since in (1, 11):
    register(
        "Pad",
        since=_since,
        infer=_pad_infer,
        evaluate=_pad_eval,
        build=_pad_build_for(_since),
        const_inputs=(1, 2, 3) if _since >= 11 else (),
    )


# ---- DepthToSpace / SpaceToDepth ---------------------------------------------------------


def _blocksize(node: Node) -> int:
    b = int(node.attr("blocksize", 0))
    if b < 1:
        raise NotSupported(f"blocksize {b}")
    return b


def _d2s_mode(node: Node) -> str:
    mode = node.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise NotSupported(f"mode {mode!r}")
    return mode


def _d2s_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _require_float(node, ins)
    shape, b = ins[0].shape, _blocksize(node)
    _d2s_mode(node)
    if len(shape) != 4 or shape[1] % (b * b):
        raise NotSupported(f"input {list(shape)} with blocksize {b}")
    n, c, h, w = shape
    return [(n, c // (b * b), h * b, w * b)]


def _d2s_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x, b = a[0], _blocksize(node)
    n, c, h, w = x.shape
    oc = c // (b * b)
    if _d2s_mode(node) == "DCR":
        t = x.reshape(n, b, b, oc, h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        t = x.reshape(n, oc, b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [np.ascontiguousarray(t.reshape(n, oc, h * b, w * b))]


def _s2d_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _require_float(node, ins)
    shape, b = ins[0].shape, _blocksize(node)
    _d2s_mode(node)
    if len(shape) != 4 or shape[2] % b or shape[3] % b:
        raise NotSupported(f"input {list(shape)} with blocksize {b}")
    n, c, h, w = shape
    return [(n, c * b * b, h // b, w // b)]


def _s2d_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x, b = a[0], _blocksize(node)
    n, c, h, w = x.shape
    perm = (0, 3, 5, 1, 2, 4) if _d2s_mode(node) == "DCR" else (0, 1, 3, 5, 2, 4)
    t = x.reshape(n, c, h // b, b, w // b, b).transpose(*perm)
    return [np.ascontiguousarray(t.reshape(n, c * b * b, h // b, w // b))]


def _block_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x = node.inputs[0]
    in_shape = ctx.shape(x)
    _check_not_empty(node, in_shape)
    b = _blocksize(node)
    if node.op_type == "DepthToSpace":
        kind = "d2s"
        mode = _d2s_mode(node)
        channels = ctx.shape(node.outputs[0])[1]
    else:
        kind, mode, channels = "s2d", _d2s_mode(node), in_shape[1]
    variables = {
        "kind": kind,
        "mode": mode,
        "block": b,
        "channels_small": channels,
        "in_strides": logical_strides(in_shape),
    }
    return [_dispatch(node, ctx, variables, [_data_binding(ctx, node, x)])]


register("DepthToSpace", infer=_d2s_infer, evaluate=_d2s_eval, build=_block_build)
register("SpaceToDepth", infer=_s2d_infer, evaluate=_s2d_eval, build=_block_build)

"""Shape and layout ops: Transpose, Reshape, Flatten, Concat (Slice and Pad: slice_pad.py;
DepthToSpace and SpaceToDepth: blocks.py), and the helpers every copy kernel shares.

On constants (shape chains) these fold with numpy. On the GPU every one of them is a copy:
one invocation per output physical element decodes its logical coordinates and reads the
input element it maps to. Reshape and Flatten are not free either, because the channel axis
is padded in the physical layout: they map through the logical row-major linear index.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..graph import Node
from ..layout import IMAGE, Layout, is_image, logical_strides, pad4
from .common import DECODE_AT_RUN_TIME, Sizes, grid_for, index_vars, normalize_axis
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register

TEMPLATE = "shape.wgsl"
MAX_CONCAT_INPUTS = 6

Const = Callable[[int], "np.ndarray | None"]  # input index -> constant value (None if unknown)


# ---- helpers -----------------------------------------------------------------------------


def ints(a: np.ndarray | None) -> list[int] | None:
    return None if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


def value_const(ins: list[Value]) -> Const:
    return lambda k: ins[k].const if k < len(ins) and ins[k].const is not None else None


def array_const(arrays: list[np.ndarray | None]) -> Const:
    return lambda k: arrays[k] if k < len(arrays) else None


def require_float(node: Node, ins: list[Value], count: int | None = None) -> None:
    """GPU tensors are float32: integer tensors may only pass through shape ops as constants."""
    for v in ins[: len(ins) if count is None else count]:
        dtype = v.const.dtype if v.const is not None else v.dtype
        if np.dtype(dtype).kind != "f":
            raise NotSupported(
                f"{node.op_type} on a {np.dtype(dtype).name} tensor that is not a constant "
                "(only float32 tensors run on the GPU)"
            )


def rowmajor(shape: tuple[int, ...] | list[int]) -> list[int]:
    return [math.prod(shape[k + 1 :]) for k in range(len(shape))]


def data_binding(ctx: BuildContext, node: Node, name: str) -> Binding:
    """A data input: a GPU tensor, or a float constant uploaded in its layout."""
    return ctx.data_binding(name, f"{node.name}/{name}")


def tensor_index(ctx: BuildContext, name: str, prefix: str = "") -> dict:
    """index_vars of a tensor in its own layout."""
    return index_vars(ctx.shape(name), prefix, ctx.layout(name))


def copy_dispatch(
    node: Node,
    ctx: BuildContext,
    variables: dict,
    inputs: list[Binding],
    out_index: int = 0,
    sizes: Sizes | None = None,
) -> Dispatch:
    """One copy kernel's dispatch. With `sizes` (holding whatever the caller's variables
    read from it) the output's decode table and the grid's pitch are read at run time too:
    the kernel's code is then the same at every spatial size."""
    y = node.outputs[out_index]
    out = tensor_index(ctx, y)
    if out["total"] == 0 or any(d == 0 for d in out["shape"]):
        raise NotSupported(f"empty output {list(out['shape'])} on the GPU")
    grid, pitch = grid_for(out["total"])
    extra: list[Binding] = []
    if sizes is not None:
        out = sizes.table(ctx.shape(y), layout=ctx.layout(y))
        variables = {**variables, "pitch": sizes(pitch), "sizes": sizes.vec4s}
        extra = sizes.binding(ctx, f"{node.name}/sizes")
    return Dispatch(
        TEMPLATE,
        {"out": out, "pitch": pitch, "sizes": 0, **variables},
        [*inputs, Binding("out", y), *extra],
        grid,
        node.name,
    )


def check_not_empty(node: Node, shape: tuple[int, ...]) -> None:
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
    require_float(node, ins)
    shape = ins[0].shape
    return [tuple(shape[p] for p in _perm(node, len(shape)))]


def _transpose_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [np.transpose(a[0], _perm(node, a[0].ndim))]


def affine_copy(
    node: Node, ctx: BuildContext, base: int, strides: list[int], out_index: int = 0
) -> list[Dispatch]:
    """y[o] = x[base + sum o_k * strides[k]] (Transpose, Slice, Split, Expand, Gather of one
    index): the map every view of a tensor reduces to."""
    x = node.inputs[0]
    check_not_empty(node, ctx.shape(x))
    variables = {"kind": "affine", "base": base, "steps": strides}
    return [copy_dispatch(node, ctx, variables, [data_binding(ctx, node, x)], out_index)]


def _transpose_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x = node.inputs[0]
    lst = ctx.strides(x)
    return affine_copy(node, ctx, 0, [lst[p] for p in _perm(node, len(ctx.shape(x)))])


register(
    "Transpose",
    infer=_transpose_infer,
    evaluate=_transpose_eval,
    build=_transpose_build,
    any_layout=True,
)


# ---- Reshape / Flatten -------------------------------------------------------------------


def _reshape_target(node: Node, in_shape: tuple[int, ...], const: Const) -> tuple[int, ...]:
    spec = ints(const(1)) if len(node.inputs) > 1 and node.inputs[1] else None
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
    require_float(node, ins, 1)
    return [_reshape_target(node, ins[0].shape, value_const(ins))]


def _reshape_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [a[0].reshape(_reshape_target(node, a[0].shape, array_const(a)))]


def _flatten_shape(node: Node, shape: tuple[int, ...]) -> tuple[int, ...]:
    rank = len(shape)
    axis = int(node.attr("axis", 1))
    if not -rank <= axis <= rank:
        raise NotSupported(f"axis {axis} out of range for rank {rank}")
    axis = axis % rank if axis < 0 else axis
    return (math.prod(shape[:axis]), math.prod(shape[axis:]))


def _flatten_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins)
    return [_flatten_shape(node, ins[0].shape)]


def _flatten_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [a[0].reshape(_flatten_shape(node, a[0].shape))]


def reshape_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    """Output coords -> logical linear index -> input coords -> input physical offset; or no
    dispatch at all when passes.layouts marked the node a view (row-major in and out)."""
    x, y = node.inputs[0], node.outputs[0]
    in_shape = ctx.shape(x)
    out_shape = ctx.shape(y)
    check_not_empty(node, in_shape)
    if node.attrs.get("_view"):
        ctx.alias(y, x)
        return []
    variables = {
        "kind": "reshape",
        "lin": rowmajor(out_shape),
        "in_div": rowmajor(in_shape),
        "in_mod": list(in_shape),
        "in_strides": ctx.strides(x),
    }
    return [copy_dispatch(node, ctx, variables, [data_binding(ctx, node, x)])]


register(
    "Reshape",
    infer=_reshape_infer,
    evaluate=_reshape_eval,
    build=reshape_build,
    const_inputs=(1,),
    any_layout=True,
)
register(
    "Flatten",
    infer=_flatten_infer,
    evaluate=_flatten_eval,
    build=reshape_build,
    any_layout=True,
)


# ---- Squeeze / Unsqueeze -----------------------------------------------------------------


def _squeeze_axes(node: Node, shape: tuple[int, ...], const: Const) -> list[int] | None:
    given = ints(const(1)) if len(node.inputs) > 1 and node.inputs[1] else None
    if given is None and len(node.inputs) > 1 and node.inputs[1]:
        raise NotSupported("axes must be a constant")
    if given is None and node.attr("axes") is not None:
        given = [int(v) for v in node.attr("axes")]
    return given


def _squeezed(node: Node, shape: tuple[int, ...], const: Const) -> tuple[int, ...]:
    axes = _squeeze_axes(node, shape, const)
    rank = len(shape)
    if axes is None:
        return tuple(d for d in shape if d != 1)
    norm = {normalize_axis(a, rank) for a in axes}
    for a in norm:
        if shape[a] != 1:
            raise NotSupported(f"cannot squeeze axis {a} of size {shape[a]}")
    return tuple(d for k, d in enumerate(shape) if k not in norm)


def _unsqueezed(node: Node, shape: tuple[int, ...], const: Const) -> tuple[int, ...]:
    axes = _squeeze_axes(node, shape, const)
    if axes is None:
        raise NotSupported("Unsqueeze needs axes")
    rank = len(shape) + len(axes)
    norm = sorted({normalize_axis(a, rank) for a in axes})
    if len(norm) != len(axes):
        raise NotSupported(f"repeated axes {axes}")
    out = list(shape)
    for a in norm:
        out.insert(a, 1)
    return tuple(out)


def _squeeze_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins, 1)
    fn = _squeezed if node.op_type == "Squeeze" else _unsqueezed
    return [fn(node, ins[0].shape, value_const(ins))]


def _squeeze_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    fn = _squeezed if node.op_type == "Squeeze" else _unsqueezed
    return [np.asarray(a[0]).reshape(fn(node, np.shape(a[0]), array_const(a)))]


register(
    ["Squeeze", "Unsqueeze"],
    infer=_squeeze_infer,
    evaluate=_squeeze_eval,
    build=reshape_build,
    const_inputs=(1,),
    any_layout=True,
)


# ---- Concat ------------------------------------------------------------------------------


def _concat_axis(node: Node, rank: int) -> int:
    return normalize_axis(int(node.attr("axis", 1)), rank)


def _concat_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins)
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


def _concat_grid(
    out_shape: tuple[int, ...], axis: int, lo: int, hi: int, layout: Layout = IMAGE
) -> dict:
    """Decode table for the output elements whose axis coordinate lies in [lo, hi).

    Coordinates come out in physical order (in the image layout channels innermost, padded to
    4 unless the channel axis is the one being split), so the grid of a single chunk is the
    whole output.
    """
    rank = len(out_shape)
    dims = list(out_shape)
    image = is_image(out_shape, layout)
    if image:
        dims[1] = pad4(dims[1])
    dims[axis] = hi - lo
    order = [0, *range(2, rank), 1] if image else list(range(rank))
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
    layout = ctx.layout(y)
    out = tensor_index(ctx, y)
    # along the batch or channel axis (a dense block's concat) the frame's size can be read
    # at run time (ops.common.DECODE_AT_RUN_TIME); along a spatial axis the parts' extents
    # are baked in
    dynamic = DECODE_AT_RUN_TIME and rank >= 3 and axis < 2
    probe = (*out_shape[:2], *(d + 1 for d in out_shape[2:]))
    parts: list[dict[str, Any]] = []
    start = 0
    for name in node.inputs:
        shape = ctx.shape(name)
        if shape[axis]:
            part_probe = (*shape[:2], *(d + 1 for d in shape[2:]))
            parts.append(
                {
                    "name": name,
                    "start": start,
                    "end": start + shape[axis],
                    "strides": ctx.strides(name),
                    "probe": logical_strides(part_probe, ctx.layout(name)),
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
        if g == len(groups) - 1 and axis == 1 and is_image(out_shape, layout):
            hi = pad4(out_shape[1])  # the last chunk also zeroes the channel pad lanes
        grid_vars = _concat_grid(out_shape, axis, lo, hi, layout)
        grid, pitch = grid_for(grid_vars["total"])
        bindings = [data_binding(ctx, node, p["name"]) for p in group]
        variables = {
            "kind": "concat",
            "out": out,
            "grid": grid_vars,
            "pitch": pitch,
            "axis": axis,
            "lo": lo,
            "parts": [{k: p[k] for k in ("start", "end", "strides")} for p in group],
            "sizes": 0,
        }
        extra: list[Binding] = []
        if dynamic:
            sizes = Sizes()
            other = _concat_grid(probe, axis, lo, hi, layout)
            variables["grid"] = grid_vars | {
                "div": sizes.varying(grid_vars["div"], other["div"]),
                "mod": sizes.varying(grid_vars["mod"], other["mod"]),
                "total": sizes(grid_vars["total"]),
            }
            variables["out"] = sizes.table(out_shape, layout=layout)
            variables["pitch"] = sizes(pitch)
            variables["parts"] = [
                {"start": p["start"], "end": p["end"]}
                | {"strides": sizes.varying(p["strides"], p["probe"])}
                for p in group
            ]
            variables["sizes"] = sizes.vec4s
            extra = sizes.binding(ctx, f"{node.name}/{g}/sizes")
        bindings += [Binding("out", y), *extra]
        dispatches.append(Dispatch(TEMPLATE, variables, bindings, grid, f"{node.name}/{g}"))
    return dispatches


register("Concat", infer=_concat_infer, evaluate=_concat_eval, build=_concat_build, any_layout=True)

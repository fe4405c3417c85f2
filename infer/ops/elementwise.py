"""Broadcasting elementwise ops with several inputs: arithmetic (Add ... Pow, PRelu, Mod),
comparisons and logic (stored on the GPU as 0.0 / 1.0), Where, and the variadic Sum, Mean,
Max and Min.

Either operand may be a constant of any shape (SPAN's mean (1, 3, 1, 1), a Linear's bias,
`x * 0.2`): the common cases are folded into the fast kernel, the rest uploaded in the
tensor's layout and broadcast by strides.

- binary_same.wgsl (4 values per invocation) when the GPU operands have the output's shape
  and layout: a constant operand is then a literal in the shader (one value) or a vector
  along the buffer's innermost axis (a per-channel constant in the image layout, a
  per-feature one such as a Linear's bias in the row-major layout), read per vec4;
- binary.wgsl (one element per invocation, any broadcast, any layouts) otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..graph import Node
from ..layout import Layout, is_image, pad4, physical_shape, vec4_count
from .common import Sizes, broadcast_shape, broadcast_strides, grid_for, index_vars
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register
from .unary import NO_ACTIVATION


def _mod(a: np.ndarray, b: np.ndarray, fmod: int) -> np.ndarray:
    """fmod=1: the sign of the dividend (C's fmod); 0: the sign of the divisor (Python's %)."""
    return np.fmod(a, b) if fmod else np.mod(a, b)


BINARY_NUMPY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Max": np.maximum,
    "Min": np.minimum,
    "Pow": np.power,
    "PRelu": lambda x, s: np.where(x >= 0, x, x * s).astype(x.dtype),
    "Equal": np.equal,
    "Less": np.less,
    "Greater": np.greater,
    "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal,
    "And": np.logical_and,
    "Or": np.logical_or,
    "Xor": np.logical_xor,
}
ARITHMETIC = ("Add", "Sub", "Mul", "Div", "Pow", "PRelu", "Mod")
COMPARISONS = ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor")
VARIADIC = ("Sum", "Mean", "Max", "Min")
SAME_MAX_VECTOR = 4096  # longest constant vector the fast kernel reads per vec4 (16 KiB)


def _inputs(node: Node) -> list[str]:
    return [i for i in node.inputs if i]


def _binary_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    for v in ins:  # constants of any number type are uploaded as floats
        if v.const is None and np.dtype(v.dtype).kind not in "fb":
            raise NotSupported(f"{node.op_type} on a {np.dtype(v.dtype).name} tensor on the GPU")
        if v.const is not None and np.dtype(v.const.dtype).kind not in "fbiu":
            raise NotSupported(f"{node.op_type} of a {v.const.dtype.name} constant")
    return [broadcast_shape(*(v.shape for v in ins))]


def _binary_eval(node: Node, arrays: list[np.ndarray], opset: int) -> list[np.ndarray]:
    arrays = [np.asarray(a) for a in arrays if a is not None]
    op = node.op_type
    if op in VARIADIC:
        if op == "Mean":
            return [np.asarray(sum(arrays) / len(arrays), dtype=arrays[0].dtype)]
        fn = {"Sum": np.add, "Max": np.maximum, "Min": np.minimum}[op]
        out = arrays[0]
        for a in arrays[1:]:
            out = fn(out, a)
        return [np.asarray(out, dtype=np.result_type(*arrays))]
    a, b = arrays
    if op == "Div" and np.issubdtype(a.dtype, np.integer):
        return [np.trunc(a / b).astype(a.dtype)]
    if op == "Mod":
        with np.errstate(all="ignore"):
            return [np.asarray(_mod(a, b, int(node.attr("fmod", 0))), a.dtype)]
    with np.errstate(all="ignore"):
        out = BINARY_NUMPY[op](a, b)
    if op in COMPARISONS:
        return [np.asarray(out, bool)]
    return [np.asarray(out, dtype=np.result_type(a, b))]


def _operand(
    ctx: BuildContext, name: str, out_shape: tuple[int, ...], layout: Layout
) -> dict | None:
    """How binary_same.wgsl reads an operand: None when it needs the generic kernel."""
    v = ctx.values[name]
    if v.const is None:
        if v.shape == out_shape and v.layout == layout:
            return {"kind": "tensor"}
        return None
    arr = np.asarray(v.const, np.float64)
    if arr.size == 1:
        value = float(arr.reshape(-1)[0])
        return {"kind": "scalar", "value": value} if math.isfinite(value) else None
    rank = len(out_shape)
    if arr.ndim > rank:
        return None
    full = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
    inner = 1 if is_image(out_shape, layout) else rank - 1  # the buffer's innermost axis
    if any(d != 1 for k, d in enumerate(full.shape) if k != inner) or rank == 0:
        return None
    n = out_shape[inner]
    width = physical_shape(out_shape, layout)[-1]
    if width % 4 or width > SAME_MAX_VECTOR:
        return None
    vec = np.zeros(width, np.float32)
    vec[:n] = np.broadcast_to(full.reshape(-1), (n,))
    return {"kind": "vector", "vector": vec, "w4": width // 4}


def binary_dispatches(
    node: Node, ctx: BuildContext, op: str, a: str, b: str, y: str, act: dict
) -> list[Dispatch]:
    out_shape, layout = ctx.shape(y), ctx.layout(y)
    ka, kb = _operand(ctx, a, out_shape, layout), _operand(ctx, b, out_shape, layout)
    fast = ka is not None and kb is not None and "tensor" in (ka["kind"], kb["kind"])
    if fast and ka is not None and kb is not None:
        count = vec4_count(out_shape, layout)
        grid, pitch = grid_for(count)
        image = is_image(out_shape, layout)
        c = out_shape[1] if image else 0
        sizes = Sizes()  # the frame's size in a uniform, not the code (one kernel, any size)
        bindings: list[Binding] = []
        for name, k in ((a, ka), (b, kb)):
            if k["kind"] == "tensor":
                bindings.append(Binding("in", name))
            elif k["kind"] == "vector":
                key = ctx.add_const(f"{node.name}/{name}/vector", k.pop("vector"))
                bindings.append(Binding("const", key))
                if not image:  # the innermost axis of a row-major tensor may be spatial
                    k["w4"] = sizes(k["w4"])
        variables = {
            "op": op,
            "fmod": int(node.attr("fmod", 0)),
            "count": sizes(count),
            "pitch": sizes(pitch),
            "act": act,
            "a": ka,
            "b": kb,
            "channels": c if image and c % 4 else None,
            "cp4": pad4(c) // 4,
        }
        bindings.append(Binding("out", y))
        bindings += sizes.binding(ctx, f"{node.name}/sizes")
        variables["sizes"] = sizes.vec4s
        return [Dispatch("binary_same.wgsl", variables, bindings, grid, node.name, count * 4.0)]
    if act["kind"] != "none":
        raise NotSupported("fused activation on a broadcasting binary op")
    out = index_vars(out_shape, layout=layout)
    grid, pitch = grid_for(out["total"])
    variables = {
        "op": op,
        "fmod": int(node.attr("fmod", 0)),
        "out": out,
        "pitch": pitch,
        "a_strides": broadcast_strides(ctx.shape(a), out_shape, ctx.layout(a)),
        "b_strides": broadcast_strides(ctx.shape(b), out_shape, ctx.layout(b)),
    }
    bindings = [
        ctx.data_binding(a, f"{node.name}/{a}"),
        ctx.data_binding(b, f"{node.name}/{b}"),
        Binding("out", y),
    ]
    flops = float(math.prod(out_shape))
    return [Dispatch("binary.wgsl", variables, bindings, grid, node.name, flops)]


def _variadic(node: Node, ctx: BuildContext, ins: list[str]) -> list[Dispatch]:
    """Sum, Mean, Max, Min of 1 or 3+ inputs: a chain of binary dispatches (Mean: a Sum, then
    a multiply by 1/n) through scratch tensors of the output's shape and layout."""
    y = node.outputs[0]
    out = ctx.values[y]
    if len(ins) == 1:
        if ctx.shape(ins[0]) != out.shape:
            raise NotSupported("a single input of another shape than the output")
        return binary_dispatches(node, ctx, "Mul", ins[0], _one(ctx, node), y, NO_ACTIVATION)
    op = {"Sum": "Add", "Mean": "Add"}.get(node.op_type, node.op_type)
    dispatches: list[Dispatch] = []
    acc = ins[0]
    steps = len(ins) - 1 + (node.op_type == "Mean")
    for k in range(1, steps + 1):
        dst = y if k == steps else f"{y}#{node.op_type.lower()}{k}"
        if dst != y:
            ctx.values[dst] = Value(out.shape, None, out.dtype, out.layout)
        if k < len(ins):
            dispatches += binary_dispatches(node, ctx, op, acc, ins[k], dst, NO_ACTIVATION)
        else:
            scale = f"{node.name}#1/n"
            arr = np.array(1.0 / len(ins), np.float32)
            ctx.values[scale] = Value((), arr, arr.dtype)
            dispatches += binary_dispatches(node, ctx, "Mul", acc, scale, dst, NO_ACTIVATION)
        acc = dst
    return dispatches


def _one(ctx: BuildContext, node: Node) -> str:
    name = f"{node.name}#one"
    ctx.values[name] = Value((), np.array(1.0, np.float32), np.dtype(np.float32))
    return name


def _binary_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    ins = _inputs(node)
    if node.op_type in VARIADIC and len(ins) != 2:
        return _variadic(node, ctx, ins)
    if len(ins) != 2:
        raise NotSupported(f"{node.op_type} of {len(ins)} inputs")
    act = node.attrs.get("_activation", NO_ACTIVATION)
    op = "Add" if node.op_type == "Sum" else node.op_type
    return binary_dispatches(node, ctx, op, ins[0], ins[1], node.outputs[0], act)


register(
    list(ARITHMETIC) + list(VARIADIC),
    infer=_binary_infer,
    evaluate=_binary_eval,
    build=_binary_build,
    any_layout=True,
)
register(
    list(COMPARISONS),
    infer=_binary_infer,
    evaluate=_binary_eval,
    build=_binary_build,
    any_layout=True,
    out_dtype=np.dtype(bool),
)


# ---- Where -------------------------------------------------------------------------------


def _where_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    cond = ins[0].const.dtype if ins[0].const is not None else ins[0].dtype
    if np.dtype(cond).kind != "b":
        raise NotSupported(f"condition of type {np.dtype(cond).name}")
    for v in ins[1:]:
        dtype = v.const.dtype if v.const is not None else v.dtype
        if np.dtype(dtype).kind != "f":
            raise NotSupported(f"Where of {np.dtype(dtype).name} values on the GPU")
    return [broadcast_shape(*(v.shape for v in ins))]


def _where_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [np.where(a[0], a[1], a[2])]


def _where_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    y = node.outputs[0]
    out_shape, layout = ctx.shape(y), ctx.layout(y)
    out = index_vars(out_shape, layout=layout)
    grid, pitch = grid_for(out["total"])
    names = node.inputs[:3]
    variables: dict[str, Any] = {
        "op": "Where",
        "fmod": 0,
        "out": out,
        "pitch": pitch,
        "c_strides": broadcast_strides(ctx.shape(names[0]), out_shape, ctx.layout(names[0])),
        "a_strides": broadcast_strides(ctx.shape(names[1]), out_shape, ctx.layout(names[1])),
        "b_strides": broadcast_strides(ctx.shape(names[2]), out_shape, ctx.layout(names[2])),
    }
    bindings = [ctx.data_binding(n, f"{node.name}/{n}") for n in names] + [Binding("out", y)]
    return [Dispatch("binary.wgsl", variables, bindings, grid, node.name)]


register("Where", infer=_where_infer, evaluate=_where_eval, build=_where_build, any_layout=True)

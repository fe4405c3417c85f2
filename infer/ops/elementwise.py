"""Elementwise ops: broadcasting binary arithmetic and activations (fusable into convs)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..graph import Node
from ..layout import pad4, physical_size
from .common import broadcast_shape, broadcast_strides, grid_for, index_vars
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register

_F32_MAX = 3.4028234663852886e38

BINARY_NUMPY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Max": np.maximum,
    "Min": np.minimum,
    "Pow": np.power,
    "PRelu": lambda x, s: np.where(x >= 0, x, x * s).astype(x.dtype),
}


def _binary_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    if node.op_type in ("Max", "Min") and len(ins) != 2:
        raise NotSupported(f"{node.op_type} with {len(ins)} inputs (only 2 supported)")
    return [broadcast_shape(*(v.shape for v in ins))]


def _binary_eval(node: Node, arrays: list[np.ndarray], opset: int) -> list[np.ndarray]:
    a, b = arrays
    if node.op_type == "Div" and np.issubdtype(a.dtype, np.integer):
        return [np.trunc(a / b).astype(a.dtype)]
    out = BINARY_NUMPY[node.op_type](a, b)
    return [np.asarray(out, dtype=np.result_type(a, b))]


def _binary_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    a, b = node.inputs
    y = node.outputs[0]
    out_shape = ctx.shape(y)
    act = node.attrs.get("_activation", NO_ACTIVATION)
    same = ctx.shape(a) == out_shape and ctx.shape(b) == out_shape
    if same and len(out_shape) >= 2 and act["kind"] != "PRelu":
        count = physical_size(out_shape) // 4
        grid, pitch = grid_for(count)
        c = out_shape[1]
        return [
            Dispatch(
                "binary_same.wgsl",
                {
                    "op": node.op_type,
                    "count": count,
                    "pitch": pitch,
                    "act": act,
                    "channels": c if c % 4 else None,
                    "cp4": pad4(c) // 4,
                },
                [Binding("in", a), Binding("in", b), Binding("out", y)],
                grid,
                node.name,
            )
        ]
    if act["kind"] != "none":
        raise NotSupported("fused activation on a broadcasting binary op")
    out = index_vars(out_shape)
    grid, pitch = grid_for(out["total"])
    variables = {
        "op": node.op_type,
        "out": out,
        "pitch": pitch,
        "a_strides": broadcast_strides(ctx.shape(a), out_shape),
        "b_strides": broadcast_strides(ctx.shape(b), out_shape),
    }
    return [
        Dispatch(
            "binary.wgsl",
            variables,
            [Binding("in", a), Binding("in", b), Binding("out", y)],
            grid,
            node.name,
        )
    ]


register(
    ["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu"],
    infer=_binary_infer,
    evaluate=_binary_eval,
    build=_binary_build,
)


# ---- activations -------------------------------------------------------------------------

NO_ACTIVATION: dict = {"kind": "none"}
UNARY_ACTIVATIONS = (
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Gelu",
    "Softplus",
    "Identity",
    "Dropout",
)


def _scalar(v: np.ndarray | None, default: float) -> float:
    if v is None or v.size == 0:
        return default
    return float(np.asarray(v).reshape(-1)[0])


def activation_spec(node: Node, const: Callable[[str], np.ndarray | None]) -> dict[str, Any]:
    """The template description of an activation node, for its own kernel or a fused store."""
    op = node.op_type
    if op in ("Identity", "Dropout"):
        return {"kind": "none"}
    if op == "Relu":
        return {"kind": "Relu"}
    if op == "LeakyRelu":
        return {"kind": "LeakyRelu", "alpha": float(node.attr("alpha", 0.01))}
    if op == "Clip":
        if "min" in node.attrs or "max" in node.attrs or len(node.inputs) == 1:
            lo = float(node.attr("min", -_F32_MAX))
            hi = float(node.attr("max", _F32_MAX))
        else:
            lo = _scalar(const(node.inputs[1]) if len(node.inputs) > 1 else None, -_F32_MAX)
            hi = _scalar(const(node.inputs[2]) if len(node.inputs) > 2 else None, _F32_MAX)
        return {"kind": "Clip", "lo": max(lo, -_F32_MAX), "hi": min(hi, _F32_MAX)}
    if op in ("Sigmoid", "Tanh", "HardSwish", "Softplus"):
        return {"kind": op}
    if op == "HardSigmoid":
        return {
            "kind": op,
            "alpha": float(node.attr("alpha", 0.2)),
            "beta": float(node.attr("beta", 0.5)),
        }
    if op == "Elu":
        return {"kind": op, "alpha": float(node.attr("alpha", 1.0))}
    if op == "Gelu":
        return {"kind": op, "approximate": node.attr("approximate", "none")}
    raise NotSupported(f"{op} is not an activation")


def apply_activation(x: np.ndarray, spec: dict) -> np.ndarray:
    """numpy twin of activation.wgsl, for constant folding."""
    k = spec["kind"]
    if k == "none":
        return x
    if k == "Relu":
        return np.maximum(x, 0)
    if k == "LeakyRelu":
        return np.where(x >= 0, x, x * spec["alpha"])
    if k == "Clip":
        return np.clip(x, spec["lo"], spec["hi"])
    if k == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if k == "Tanh":
        return np.tanh(x)
    if k == "HardSigmoid":
        return np.clip(x * spec["alpha"] + spec["beta"], 0, 1)
    if k == "HardSwish":
        return x * np.clip(x / 6 + 0.5, 0, 1)
    if k == "Elu":
        return np.where(x > 0, x, spec["alpha"] * (np.exp(np.minimum(x, 0)) - 1))
    if k == "Gelu":
        if spec.get("approximate") == "tanh":
            return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))
        erf = np.vectorize(math.erf)
        return 0.5 * x * (1 + erf(x / math.sqrt(2)))
    if k == "Softplus":
        return np.logaddexp(x, 0)
    raise NotSupported(k)


def _unary_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    shapes = [ins[0].shape]
    if node.op_type == "Dropout" and len(node.outputs) > 1 and node.outputs[1]:
        raise NotSupported("Dropout mask output")
    return shapes


def _unary_eval(node: Node, arrays: list[np.ndarray], opset: int) -> list[np.ndarray]:
    spec = activation_spec(node, lambda n: arrays[node.inputs.index(n)] if n else None)
    x = arrays[0]
    return [np.asarray(apply_activation(x, spec), dtype=x.dtype)]


def unary_dispatch(x: str, y: str, shape: tuple[int, ...], act: dict, label: str) -> Dispatch:
    total = physical_size(shape)
    vec = len(shape) >= 2
    count = total // 4 if vec else total
    grid, pitch = grid_for(count)
    c = shape[1] if vec else 0
    return Dispatch(
        "unary.wgsl",
        {
            "vec": vec,
            "count": count,
            "pitch": pitch,
            "act": act,
            "channels": c if vec and c % 4 else None,
            "cp4": pad4(c) // 4 if vec else 0,
        },
        [Binding("in", x), Binding("out", y)],
        grid,
        label,
    )


def _unary_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    spec = activation_spec(node, ctx.const)
    return [
        unary_dispatch(node.inputs[0], node.outputs[0], ctx.shape(node.inputs[0]), spec, node.name)
    ]


register(
    list(UNARY_ACTIVATIONS),
    infer=_unary_infer,
    evaluate=_unary_eval,
    build=_unary_build,
    const_inputs=(1, 2),
)

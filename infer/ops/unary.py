"""Unary elementwise ops: activations (fusable into a conv's store) and math functions.

One template (activation.wgsl) describes every one of them as `activate(v)` on a vec4, so the
same description runs as its own kernel (unary.wgsl, 4 values per invocation in either
layout) or inside a conv's store. The numpy twin (`apply_activation`) folds them on
constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..graph import Node
from ..layout import is_image, pad4, vec4_count
from .common import grid_for, index_vars
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register

_F32_MAX = 3.4028234663852886e38

NO_ACTIVATION: dict = {"kind": "none"}
# activations a Conv may absorb (passes.fuse.fuse_activations)
UNARY_ACTIVATIONS = (
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Selu",
    "Celu",
    "ThresholdedRelu",
    "Gelu",
    "Softplus",
    "Softsign",
    "Mish",
    "Identity",
    "Dropout",
)
# math functions: the same kernel, never fused into a conv (no network puts them there)
UNARY_MATH = (
    "Sqrt",
    "Reciprocal",
    "Exp",
    "Log",
    "Neg",
    "Abs",
    "Erf",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Sin",
    "Cos",
    "Not",
)


def _scalar(v: np.ndarray | None, default: float) -> float:
    if v is None or v.size == 0:
        return default
    return float(np.asarray(v).reshape(-1)[0])


def activation_spec(node: Node, const: Callable[[str], np.ndarray | None]) -> dict[str, Any]:
    """The template description of a unary node, for its own kernel or a fused store."""
    op = node.op_type
    if op in ("Identity", "Dropout"):
        return {"kind": "none"}
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
    if op == "HardSigmoid":
        return {
            "kind": op,
            "alpha": float(node.attr("alpha", 0.2)),
            "beta": float(node.attr("beta", 0.5)),
        }
    if op in ("Elu", "Celu"):
        return {"kind": op, "alpha": float(node.attr("alpha", 1.0))}
    if op == "Selu":
        return {
            "kind": op,
            "alpha": float(node.attr("alpha", 1.6732632423543772)),
            "gamma": float(node.attr("gamma", 1.0507009873554805)),
        }
    if op == "ThresholdedRelu":
        return {"kind": op, "alpha": float(node.attr("alpha", 1.0))}
    if op == "Gelu":
        approximate = node.attr("approximate", "none")
        if approximate not in ("none", "tanh"):
            raise NotSupported(f"approximate={approximate!r}")
        return {"kind": op, "approximate": approximate}
    if op in UNARY_ACTIVATIONS or op in UNARY_MATH or op == "SiLU":
        return {"kind": op}
    raise NotSupported(f"{op} is not a unary op")


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


_NUMPY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Relu": lambda x: np.maximum(x, 0),
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "SiLU": lambda x: x / (1 + np.exp(-x)),
    "Tanh": np.tanh,
    "HardSwish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "Softplus": lambda x: np.logaddexp(x, 0),
    "Softsign": lambda x: x / (1 + np.abs(x)),
    "Mish": lambda x: x * np.tanh(np.logaddexp(x, 0)),
    "Sqrt": np.sqrt,
    "Reciprocal": lambda x: 1 / x,
    "Exp": np.exp,
    "Log": np.log,
    "Neg": np.negative,
    "Abs": np.abs,
    "Erf": _erf,
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Round": np.round,  # half to even, like ONNX and WGSL's round()
    "Sign": np.sign,
    "Sin": np.sin,
    "Cos": np.cos,
    "Not": np.logical_not,
}


def apply_activation(x: np.ndarray, spec: dict) -> np.ndarray:
    """numpy twin of activation.wgsl, for constant folding."""
    k = spec["kind"]
    if k == "none":
        return x
    if k == "LeakyRelu":
        return np.where(x >= 0, x, x * spec["alpha"])
    if k == "Clip":
        return np.clip(x, spec["lo"], spec["hi"])
    if k == "HardSigmoid":
        return np.clip(x * spec["alpha"] + spec["beta"], 0, 1)
    if k == "Elu":
        return np.where(x > 0, x, spec["alpha"] * (np.exp(np.minimum(x, 0)) - 1))
    if k == "Celu":
        a = spec["alpha"]
        return np.maximum(x, 0) + np.minimum(0, a * (np.exp(x / a) - 1))
    if k == "Selu":
        neg = spec["alpha"] * (np.exp(np.minimum(x, 0)) - 1)
        return spec["gamma"] * np.where(x > 0, x, neg)
    if k == "ThresholdedRelu":
        return np.where(x > spec["alpha"], x, 0)
    if k == "Gelu":
        if spec.get("approximate") == "tanh":
            return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))
        return 0.5 * x * (1 + _erf(x / math.sqrt(2)))
    fn = _NUMPY.get(k)
    if fn is None:
        raise NotSupported(k)
    return fn(x)


def _check_dropout(node: Node, training: np.ndarray | None) -> None:
    if len(node.outputs) > 1 and node.outputs[1]:
        raise NotSupported("Dropout mask output")
    if training is not None and bool(np.asarray(training).reshape(-1)[0]):
        raise NotSupported("training-mode Dropout (random masks): the engine is inference only")


def _unary_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    if node.op_type == "Dropout":
        _check_dropout(node, ins[2].const if len(ins) > 2 else None)
    dtype = ins[0].const.dtype if ins[0].const is not None else ins[0].dtype
    if np.dtype(dtype).kind not in "fb":
        raise NotSupported(f"{node.op_type} on a {np.dtype(dtype).name} tensor on the GPU")
    return [ins[0].shape]


def _unary_eval(node: Node, arrays: list[np.ndarray], opset: int) -> list[np.ndarray]:
    if node.op_type == "Dropout":
        _check_dropout(node, arrays[2] if len(arrays) > 2 else None)
    spec = activation_spec(node, lambda n: arrays[node.inputs.index(n)] if n else None)
    x = np.asarray(arrays[0])
    with np.errstate(all="ignore"):  # log(0), sqrt(-1): numpy's inf / nan, as onnxruntime
        y = apply_activation(x, spec)
    return [np.asarray(y, dtype=bool if node.op_type == "Not" else x.dtype)]


def unary_dispatch(
    ctx: BuildContext, x: str, y: str, act: dict, label: str, flops_per: float = 1.0
) -> Dispatch:
    """y = activate(x), 4 values per invocation. In the image layout padding lanes are written
    as zero (log, sqrt or 1/x of a zero lane is not); a row-major tail is never read. When x
    and y lie in different layouts, one element per invocation at each one's strides."""
    shape, layout = ctx.shape(x), ctx.layout(x)
    if is_image(shape, layout) != is_image(shape, ctx.layout(y)):
        out = index_vars(shape, layout=ctx.layout(y))
        grid, pitch = grid_for(out["total"])
        variables = {
            "op": "Unary",
            "out": out,
            "pitch": pitch,
            "act": act,
            "a_strides": ctx.strides(x),
        }
        bindings = [Binding("in", x), Binding("out", y)]
        return Dispatch(
            "binary.wgsl", variables, bindings, grid, label, flops_per * math.prod(shape)
        )
    count = vec4_count(shape, layout)
    grid, pitch = grid_for(count)
    image = is_image(shape, layout)
    c = shape[1] if image else 0
    return Dispatch(
        "unary.wgsl",
        {
            "count": count,
            "pitch": pitch,
            "act": act,
            "channels": c if image and c % 4 else None,
            "cp4": pad4(c) // 4 if image else 0,
        },
        [Binding("in", x), Binding("out", y)],
        grid,
        label,
        flops_per * float(np.prod(shape)),
    )


def _unary_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    spec = activation_spec(node, ctx.const)
    return [unary_dispatch(ctx, node.inputs[0], node.outputs[0], spec, node.name)]


register(
    list(UNARY_ACTIVATIONS) + list(UNARY_MATH),
    infer=_unary_infer,
    evaluate=_unary_eval,
    build=_unary_build,
    const_inputs=(1, 2),
    any_layout=True,
)
# x * sigmoid(x), recognised by passes.fuse (no ONNX op before opset 22's Swish)
register(
    "SiLU",
    infer=_unary_infer,
    evaluate=_unary_eval,
    build=_unary_build,
    domain="ai.framesmith",
    any_layout=True,
)

"""MatMul, Gemm and Einsum: one batched matrix-product kernel (matmul.wgsl) for all three.

The kernel reads A[batch, m, k] and B[batch, k, n] and writes C[batch, m, n] at arbitrary
element strides and offsets per tensor (products.py), so a transposed operand (Gemm's
transA/transB, `k.transpose(-2, -1)`, `qkv[0]` of a permuted tensor: passes.views folds
those in), any einsum index order, and tensors of either layout cost no copy. Each
invocation computes a TM x TN tile of C in registers: per step of k, TM loads of A and TN
of B feed TM * TN multiply-adds. A MatMul may carry a bias (an Add folded in by passes.fuse)
and writes through an activation.

Einsum is lowered to this kernel when the equation is a batched product of two operands:
every index is a batch index (in the output), a row index (A and output), a column index
(B and output) or the contracted index (A and B, not the output), at most one of each of the
last three. Anything else is refused by name.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..graph import Node
from .common import grid_for, pad_lanes_dispatch
from .products import (
    Operand,
    Plan,
    einsum_plan,
    einsum_shape,
    gemm_mnk,
    gemm_plan,
    matmul_plan,
    matmul_shape,
    operand,
    output,
)
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register
from .unary import NO_ACTIVATION

TEMPLATE = "matmul.wgsl"
TM, TN = 4, 4  # outputs per invocation (rows x columns)


def _check_float(node: Node, ins: list[Value]) -> None:
    for v in ins:
        dtype = v.const.dtype if v.const is not None else v.dtype
        if np.dtype(dtype).kind != "f":
            raise NotSupported(f"{node.op_type} of {np.dtype(dtype).name} tensors on the GPU")


def product_dispatch(
    node: Node,
    ctx: BuildContext,
    a: Operand,
    b: Operand,
    y: Operand,
    plan: Plan,
    bias: tuple[str, list[int], float] | None = None,
    alpha: float = 1.0,
) -> list[Dispatch]:
    """C = alpha * A @ B (+ beta * bias) (then the node's activation); bias = (name, its
    strides over the output axes, beta)."""
    m, n, k = plan["m"], plan["n"], plan["k"]
    if 0 in (m, n, k) or any(bt[0] == 0 for bt in plan["batch"]):
        raise NotSupported(f"{node.op_type} with an empty dimension")
    bias_batch = bias[1][: len(plan["batch"])] if bias is not None else []
    batch = [
        (*bt, bias_batch[j] if j < len(bias_batch) else 0)
        for j, bt in enumerate(plan["batch"])
        if bt[0] > 1
    ]
    batches = math.prod(bt[0] for bt in batch)
    mt, nt = -(-m // TM), -(-n // TN)
    grid, pitch = grid_for(batches * mt * nt)
    variables: dict[str, Any] = {
        "pitch": pitch,
        "total": batches * mt * nt,
        "m": m,
        "n": n,
        "k": k,
        "mt": mt,
        "nt": nt,
        "tm": TM,
        "tn": TN,
        "batch": [
            {
                "n": bt[0],
                "div": math.prod(x[0] for x in batch[j + 1 :]),
                "a": bt[1],
                "b": bt[2],
                "c": bt[3],
                "bias": bt[4],
            }
            for j, bt in enumerate(batch)
        ],  # fmt: skip
        "a": plan["a"],
        "b": plan["b"],
        "c": plan["c"],
        "offsets": (a.offset, b.offset),
        "alpha": float(alpha),
        "bias": None,
        "act": node.attrs.get("_activation", NO_ACTIVATION),
    }
    bindings = [
        ctx.data_binding(a.name, f"{node.name}/{a.name}"),
        ctx.data_binding(b.name, f"{node.name}/{b.name}"),
    ]
    if bias is not None:
        name, strides, beta = bias
        variables["bias"] = {"m": strides[-2], "n": strides[-1], "beta": float(beta)}
        bindings.append(ctx.data_binding(name, f"{node.name}/{name}"))
    bindings.append(Binding("out", y.name))
    flops = 2.0 * batches * m * n * k
    out = [Dispatch(TEMPLATE, variables, bindings, grid, node.name, flops)]
    return out + pad_lanes_dispatch(y.name, ctx.shape(y.name), ctx.layout(y.name), node.name)


def _bias_strides(ctx: BuildContext, name: str, out_shape: tuple[int, ...]) -> list[int]:
    """A bias broadcast to the output: its element strides over the output axes."""
    shape = ctx.shape(name)
    try:
        if len(shape) > len(out_shape) or np.broadcast_shapes(shape, out_shape) != out_shape:
            raise ValueError
    except ValueError as e:
        raise NotSupported(f"bias {list(shape)} does not broadcast to {list(out_shape)}") from e
    st = ctx.strides(name)
    pad = len(out_shape) - len(shape)
    return [0] * pad + [0 if d == 1 else s for d, s in zip(shape, st, strict=True)]


# ---- MatMul ------------------------------------------------------------------------------


def _matmul_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _check_float(node, ins)
    return [matmul_shape(ins[0].shape, ins[1].shape)]


def _matmul_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    y = np.matmul(a[0], a[1])
    return [y + a[2] if len(a) > 2 and a[2] is not None else y]


def _matmul_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    a, b, y = operand(ctx, node, 0), operand(ctx, node, 1), output(ctx, node)
    plan = matmul_plan(a, b, y)
    bias = None
    if len(node.inputs) > 2 and node.inputs[2]:  # an Add folded in by passes.fuse
        if len(y.shape) < 2 or len(a.shape) < 2 or len(b.shape) < 2:
            raise NotSupported("a bias on a MatMul of vectors")
        bias = (node.inputs[2], _bias_strides(ctx, node.inputs[2], y.shape), 1.0)
    return product_dispatch(node, ctx, a, b, y, plan, bias)


register(
    "MatMul",
    infer=_matmul_infer,
    evaluate=_matmul_eval,
    build=_matmul_build,
    any_layout=True,
)


# ---- Gemm --------------------------------------------------------------------------------


def _gemm_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _check_float(node, ins)
    m, n, _ = gemm_mnk(node, ins[0].shape, ins[1].shape)
    if len(ins) > 2:
        try:
            np.broadcast_shapes(ins[2].shape, (m, n))
        except ValueError as e:
            raise NotSupported(f"C {list(ins[2].shape)} does not broadcast to {[m, n]}") from e
    return [(m, n)]


def _gemm_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x, w = np.asarray(a[0]), np.asarray(a[1])
    if int(node.attr("transA", 0)):
        x = x.T
    if int(node.attr("transB", 0)):
        w = w.T
    y = float(node.attr("alpha", 1.0)) * (x @ w)
    if len(a) > 2 and a[2] is not None:
        y = y + float(node.attr("beta", 1.0)) * np.asarray(a[2])
    return [np.asarray(y, dtype=x.dtype)]


def _gemm_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    a, b, y = operand(ctx, node, 0), operand(ctx, node, 1), output(ctx, node)
    plan = gemm_plan(node, a, b, y)
    bias = None
    if len(node.inputs) > 2 and node.inputs[2]:
        strides = _bias_strides(ctx, node.inputs[2], (plan["m"], plan["n"]))
        bias = (node.inputs[2], strides, float(node.attr("beta", 1.0)))
    return product_dispatch(node, ctx, a, b, y, plan, bias, float(node.attr("alpha", 1.0)))


register("Gemm", infer=_gemm_infer, evaluate=_gemm_eval, build=_gemm_build, any_layout=True)


# ---- Einsum ------------------------------------------------------------------------------


def _einsum_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _check_float(node, ins)
    if len(ins) != 2:
        raise NotSupported(f"einsum of {len(ins)} operands (2 run on the GPU)")
    return [einsum_shape(str(node.attr("equation")), ins[0].shape, ins[1].shape)]


def _einsum_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    arrays = [np.asarray(v) for v in a]
    try:
        return [np.einsum(str(node.attr("equation")), *arrays)]
    except (ValueError, TypeError) as e:
        raise NotSupported(f"einsum: {e}") from e


def _einsum_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    a, b, y = operand(ctx, node, 0), operand(ctx, node, 1), output(ctx, node)
    plan = einsum_plan(str(node.attr("equation")), a, b, y)
    return product_dispatch(node, ctx, a, b, y, plan)


register("Einsum", infer=_einsum_infer, evaluate=_einsum_eval, build=_einsum_build, any_layout=True)

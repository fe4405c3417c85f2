"""MatMul, Gemm and Einsum: one batched matrix-product kernel (matmul.wgsl) for all three.

The kernel reads A[batch, m, k] and B[batch, k, n] and writes C[batch, m, n] at arbitrary
element strides per tensor (broadcast batch axes have stride 0), so a transposed operand
(Gemm's transA/transB, `k.transpose(-2, -1)` folded in by passes.fuse, any einsum index
order) costs no copy, and tensors of either layout are read where they lie. Each invocation
computes a TM x TN tile of C in registers: per step of k, TM loads of A and TN of B feed
TM * TN multiply-adds.

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
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register

TEMPLATE = "matmul.wgsl"
TM, TN = 4, 4  # outputs per invocation (rows x columns)


def _check_float(node: Node, ins: list[Value]) -> None:
    for v in ins:
        dtype = v.const.dtype if v.const is not None else v.dtype
        if np.dtype(dtype).kind != "f":
            raise NotSupported(f"{node.op_type} of {np.dtype(dtype).name} tensors on the GPU")


# ---- the product plan: batch / m / n / k extents and each tensor's strides ----------------


def product_dispatch(
    node: Node,
    ctx: BuildContext,
    a: str,
    b: str,
    y: str,
    plan: dict[str, Any],
    bias: tuple[str, list[int], float] | None = None,
    alpha: float = 1.0,
) -> list[Dispatch]:
    """C = alpha * A @ B (+ beta * bias) for a plan: {"batch": [(n, sa, sb, sc)], "m", "n",
    "k", "a": (sm, sk), "b": (sk, sn), "c": (sm, sn)}; bias = (name, strides over the
    batch axes then m, n, beta)."""
    m, n, k = plan["m"], plan["n"], plan["k"]
    batch = [bt for bt in plan["batch"] if bt[0] > 1]
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
                "bias": bt[4] if len(bt) > 4 else 0,
            }
            for j, bt in enumerate(batch)
        ],  # fmt: skip
        "a": plan["a"],
        "b": plan["b"],
        "c": plan["c"],
        "alpha": float(alpha),
        "bias": None,
        "act": node.attrs.get("_activation", {"kind": "none"}),
    }
    bindings = [ctx.data_binding(a, f"{node.name}/{a}"), ctx.data_binding(b, f"{node.name}/{b}")]
    if bias is not None:
        name, strides, beta = bias
        variables["bias"] = {"m": strides[-2], "n": strides[-1], "beta": float(beta)}
        bindings.append(ctx.data_binding(name, f"{node.name}/{name}"))
    bindings.append(Binding("out", y))
    flops = 2.0 * batches * m * n * k
    out = [Dispatch(TEMPLATE, variables, bindings, grid, node.name, flops)]
    return out + pad_lanes_dispatch(y, ctx.shape(y), ctx.layout(y), node.name)


def _bias_plan(
    ctx: BuildContext, name: str, out_shape: tuple[int, ...]
) -> tuple[list[int], list[int]]:
    """A bias broadcast to the output: (its strides over the output axes, the batch ones)."""
    shape = ctx.shape(name)
    if len(shape) > len(out_shape):
        raise NotSupported(f"bias {list(shape)} does not broadcast to {list(out_shape)}")
    try:
        np.broadcast_shapes(shape, out_shape)
    except ValueError as e:
        raise NotSupported(f"bias {list(shape)} does not broadcast to {list(out_shape)}") from e
    st = ctx.strides(name)
    pad = len(out_shape) - len(shape)
    full = [0] * pad + [0 if d == 1 else s for d, s in zip(shape, st, strict=True)]
    return full, full[:-2]


# ---- MatMul ------------------------------------------------------------------------------


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if not a or not b:
        raise NotSupported("MatMul of a scalar")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise NotSupported(f"MatMul of {list(a)} and {list(b)}: inner sizes differ")
    try:
        batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    except ValueError as e:
        raise NotSupported(f"MatMul batch axes {list(a)} and {list(b)} do not broadcast") from e
    out = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        out = (*out[:-2], out[-1])
    if len(b) == 1:
        out = out[:-1]
    return tuple(out)


def _matmul_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _check_float(node, ins)
    return [_matmul_shape(ins[0].shape, ins[1].shape)]


def _matmul_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    return [np.matmul(a[0], a[1])]


def matmul_plan(ctx: BuildContext, a: str, b: str, y: str) -> dict[str, Any]:
    ra, rb = len(ctx.shape(a)), len(ctx.shape(b))
    sa, sb = ctx.shape(a), ctx.shape(b)
    ta, tb, ty = ctx.strides(a), ctx.strides(b), ctx.strides(y)
    # 1-D operands: a row vector (m = 1) / a column vector (n = 1), absent from the output
    if ra == 1:
        sa, ta = (1, *sa), [0, *ta]
    if rb == 1:
        sb, tb = (*sb, 1), [*tb, 0]
    if ra > 1 and rb > 1:
        cm, cn = ty[-2], ty[-1]
    elif ra > 1:
        cm, cn = ty[-1], 0
    elif rb > 1:
        cm, cn = 0, ty[-1]
    else:
        cm = cn = 0
    batch_shape = np.broadcast_shapes(sa[:-2], sb[:-2])
    nb = len(batch_shape)
    batch = []
    for j, d in enumerate(batch_shape):
        ja, jb = j - (nb - (len(sa) - 2)), j - (nb - (len(sb) - 2))
        stra = ta[ja] if ja >= 0 and sa[ja] != 1 else 0
        strb = tb[jb] if jb >= 0 and sb[jb] != 1 else 0
        batch.append((d, stra, strb, ty[j]))
    return {
        "batch": batch,
        "m": sa[-2],
        "n": sb[-1],
        "k": sa[-1],
        "a": (ta[-2], ta[-1]),
        "b": (tb[-2], tb[-1]),
        "c": (cm, cn),
    }


def _matmul_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    a, b = node.inputs[0], node.inputs[1]
    y = node.outputs[0]
    if 0 in ctx.shape(y) or 0 in ctx.shape(a):
        raise NotSupported("MatMul with an empty dimension")
    plan = matmul_plan(ctx, a, b, y)
    bias = None
    if len(node.inputs) > 2 and node.inputs[2]:  # an Add fused by passes.fuse
        full, batch = _bias_plan(ctx, node.inputs[2], ctx.shape(y))
        plan["batch"] = [(*bt, batch[j]) for j, bt in enumerate(plan["batch"])]
        bias = (node.inputs[2], full, 1.0)
    return product_dispatch(node, ctx, a, b, y, plan, bias)


register(
    "MatMul",
    infer=_matmul_infer,
    evaluate=_matmul_eval,
    build=_matmul_build,
    any_layout=True,
)


# ---- Gemm --------------------------------------------------------------------------------


def _gemm_mnk(node: Node, sa: tuple[int, ...], sb: tuple[int, ...]) -> tuple[int, int, int]:
    if len(sa) != 2 or len(sb) != 2:
        raise NotSupported(f"Gemm of rank {len(sa)} and {len(sb)} (2-D only)")
    m, k = (sa[1], sa[0]) if int(node.attr("transA", 0)) else sa
    k2, n = (sb[1], sb[0]) if int(node.attr("transB", 0)) else sb
    if k != k2:
        raise NotSupported(f"Gemm inner sizes {k} and {k2} differ")
    return m, n, k


def _gemm_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _check_float(node, ins)
    m, n, _ = _gemm_mnk(node, ins[0].shape, ins[1].shape)
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
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    m, n, k = _gemm_mnk(node, ctx.shape(a), ctx.shape(b))
    if 0 in (m, n, k):
        raise NotSupported("Gemm with an empty dimension")
    ta, tb, ty = ctx.strides(a), ctx.strides(b), ctx.strides(y)
    plan = {
        "batch": [],
        "m": m,
        "n": n,
        "k": k,
        "a": (ta[1], ta[0]) if int(node.attr("transA", 0)) else (ta[0], ta[1]),
        "b": (tb[1], tb[0]) if int(node.attr("transB", 0)) else (tb[0], tb[1]),
        "c": (ty[0], ty[1]),
    }
    bias = None
    if len(node.inputs) > 2 and node.inputs[2]:
        full, _ = _bias_plan(ctx, node.inputs[2], (m, n))
        bias = (node.inputs[2], full, float(node.attr("beta", 1.0)))
    return product_dispatch(node, ctx, a, b, y, plan, bias, float(node.attr("alpha", 1.0)))


register("Gemm", infer=_gemm_infer, evaluate=_gemm_eval, build=_gemm_build, any_layout=True)


# ---- Einsum ------------------------------------------------------------------------------


def parse_einsum(equation: str, ranks: list[int]) -> tuple[list[str], str]:
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise NotSupported(f"einsum {equation!r}: ellipsis")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if not arrow:  # implicit output: the letters seen once, sorted
        letters = "".join(terms)
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if len(terms) != len(ranks) or any(len(t) != r for t, r in zip(terms, ranks, strict=True)):
        raise NotSupported(f"einsum {equation!r} does not match inputs of rank {ranks}")
    return terms, out


def einsum_roles(equation: str, ranks: list[int]) -> dict[str, Any]:
    """The letters of a two-operand batched product, by role, or NotSupported naming why."""
    terms, out = parse_einsum(equation, ranks)
    if len(terms) != 2:
        raise NotSupported(f"einsum {equation!r}: {len(terms)} operands (2 run on the GPU)")
    ta, tb = terms
    for t in (ta, tb, out):
        if len(set(t)) != len(t):
            raise NotSupported(f"einsum {equation!r}: a repeated index (a diagonal)")
    batch = [c for c in out if c in ta and c in tb]
    ms = [c for c in out if c in ta and c not in tb]
    ns = [c for c in out if c in tb and c not in ta]
    ks = [c for c in ta if c in tb and c not in out]
    alone = [c for c in ta + tb if c not in out and c not in ks]
    if len(ms) > 1 or len(ns) > 1 or len(ks) > 1 or alone or any(c not in ta + tb for c in out):
        raise NotSupported(
            f"einsum {equation!r}: not a batched product of two operands (at most one row, "
            "one column and one contracted index)"
        )
    return {"a": ta, "b": tb, "out": out, "batch": batch, "m": ms, "n": ns, "k": ks}


def _einsum_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    _check_float(node, ins)
    roles = einsum_roles(str(node.attr("equation")), [len(v.shape) for v in ins])
    size: dict[str, int] = {}
    for term, v in ((roles["a"], ins[0]), (roles["b"], ins[1])):
        for c, d in zip(term, v.shape, strict=True):
            if size.setdefault(c, d) != d:
                raise NotSupported(f"einsum index {c!r} is {size[c]} and {d}")
    return [tuple(size[c] for c in roles["out"])]


def _einsum_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    arrays = [np.asarray(v) for v in a]
    try:
        return [np.einsum(str(node.attr("equation")), *arrays)]
    except ValueError as e:
        raise NotSupported(f"einsum: {e}") from e


def _einsum_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    roles = einsum_roles(str(node.attr("equation")), [len(ctx.shape(a)), len(ctx.shape(b))])
    size = dict(zip(roles["a"], ctx.shape(a), strict=True))
    size.update(zip(roles["b"], ctx.shape(b), strict=True))
    st: dict[str, dict[str, int]] = {"a": {}, "b": {}, "out": {}}
    for key, name in (("a", a), ("b", b), ("out", y)):
        st[key] = dict(zip(roles[key], ctx.strides(name), strict=True))

    def stride(key: str, letters: list[str]) -> int:
        return st[key].get(letters[0], 0) if letters else 0

    plan = {
        "batch": [(size[c], st["a"][c], st["b"][c], st["out"][c]) for c in roles["batch"]],
        "m": size[roles["m"][0]] if roles["m"] else 1,
        "n": size[roles["n"][0]] if roles["n"] else 1,
        "k": size[roles["k"][0]] if roles["k"] else 1,
        "a": (stride("a", roles["m"]), stride("a", roles["k"])),
        "b": (stride("b", roles["k"]), stride("b", roles["n"])),
        "c": (stride("out", roles["m"]), stride("out", roles["n"])),
    }
    if 0 in ctx.shape(y) or plan["k"] == 0:
        raise NotSupported("einsum with an empty dimension")
    return product_dispatch(node, ctx, a, b, y, plan)


register("Einsum", infer=_einsum_infer, evaluate=_einsum_eval, build=_einsum_build, any_layout=True)

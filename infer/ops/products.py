"""The geometry of a batched matrix product, shared by MatMul, Gemm, Einsum and the fused
attention: from each operand's shape and element strides to a plan the kernels read.

A plan is {"batch": [(n, sa, sb, sc)], "m", "n", "k", "a": (sm, sk), "b": (sk, sn),
"c": (sm, sn)}: C[batch, m, n] = sum_k A[batch, m, k] * B[batch, k, n], every tensor at its
own strides (broadcast batch axes have stride 0). Pure functions of shapes and strides, so a
graph pass can check a rewrite with row-major strides before any layout is chosen.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..graph import Node
from ..layout import rowmajor_strides
from .registry import BuildContext, NotSupported

Plan = dict[str, Any]


class Operand(NamedTuple):
    """A tensor as a product reads it: its logical shape, and where each element lies in the
    buffer of `name` (a view composed by passes.views has its own offset and strides)."""

    name: str
    shape: tuple[int, ...]
    strides: list[int]
    offset: int = 0


def operand(ctx: BuildContext, node: Node, k: int) -> Operand:
    """Input k of a product node, through the strided view passes.views recorded, if any."""
    name = node.inputs[k]
    view = node.attrs.get("_views", {}).get(k)
    if view is not None:  # name is then the root tensor the view reads
        logical, offset, strides = view
        return Operand(name, ctx.shape(logical), list(strides), int(offset))
    return Operand(name, ctx.shape(name), ctx.strides(name))


def output(ctx: BuildContext, node: Node) -> Operand:
    """The output a product writes: its own tensor, or (passes.views) the Transpose of it that
    it writes directly, at strides over the product's own output axes."""
    name = node.outputs[0]
    view = node.attrs.get("_out_view")
    if view is not None:
        logical, strides = view
        return Operand(name, ctx.shape(logical), list(strides))
    return Operand(name, ctx.shape(name), ctx.strides(name))


def rows(name: str, shape: tuple[int, ...]) -> Operand:
    return Operand(name, tuple(shape), rowmajor_strides(shape))


# ---- MatMul ------------------------------------------------------------------------------


def matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
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


def matmul_plan(a: Operand, b: Operand, y: Operand) -> Plan:
    ra, rb = len(a.shape), len(b.shape)
    sa, ta = a.shape, list(a.strides)
    sb, tb = b.shape, list(b.strides)
    ty = y.strides
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


# ---- Gemm --------------------------------------------------------------------------------


def gemm_mnk(node: Node, sa: tuple[int, ...], sb: tuple[int, ...]) -> tuple[int, int, int]:
    if len(sa) != 2 or len(sb) != 2:
        raise NotSupported(f"Gemm of rank {len(sa)} and {len(sb)} (2-D only)")
    m, k = (sa[1], sa[0]) if int(node.attr("transA", 0)) else sa
    k2, n = (sb[1], sb[0]) if int(node.attr("transB", 0)) else sb
    if k != k2:
        raise NotSupported(f"Gemm inner sizes {k} and {k2} differ")
    return m, n, k


def gemm_plan(node: Node, a: Operand, b: Operand, y: Operand) -> Plan:
    m, n, k = gemm_mnk(node, a.shape, b.shape)
    ta, tb, ty = a.strides, b.strides, y.strides
    return {
        "batch": [],
        "m": m,
        "n": n,
        "k": k,
        "a": (ta[1], ta[0]) if int(node.attr("transA", 0)) else (ta[0], ta[1]),
        "b": (tb[1], tb[0]) if int(node.attr("transB", 0)) else (tb[0], tb[1]),
        "c": (ty[0], ty[1]),
    }


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


def einsum_shape(equation: str, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    roles = einsum_roles(equation, [len(a), len(b)])
    size: dict[str, int] = {}
    for term, shape in ((roles["a"], a), (roles["b"], b)):
        for c, d in zip(term, shape, strict=True):
            if size.setdefault(c, d) != d:
                raise NotSupported(f"einsum index {c!r} is {size[c]} and {d}")
    return tuple(size[c] for c in roles["out"])


def einsum_plan(equation: str, a: Operand, b: Operand, y: Operand) -> Plan:
    roles = einsum_roles(equation, [len(a.shape), len(b.shape)])
    size = dict(zip(roles["a"], a.shape, strict=True))
    size.update(zip(roles["b"], b.shape, strict=True))
    st = {
        "a": dict(zip(roles["a"], a.strides, strict=True)),
        "b": dict(zip(roles["b"], b.strides, strict=True)),
        "out": dict(zip(roles["out"], y.strides, strict=True)),
    }

    def stride(key: str, letters: list[str]) -> int:
        return st[key].get(letters[0], 0) if letters else 0

    return {
        "batch": [(size[c], st["a"][c], st["b"][c], st["out"][c]) for c in roles["batch"]],
        "m": size[roles["m"][0]] if roles["m"] else 1,
        "n": size[roles["n"][0]] if roles["n"] else 1,
        "k": size[roles["k"][0]] if roles["k"] else 1,
        "a": (stride("a", roles["m"]), stride("a", roles["k"])),
        "b": (stride("b", roles["k"]), stride("b", roles["n"])),
        "c": (stride("out", roles["m"]), stride("out", roles["n"])),
    }


def plan_for(op: str, attrs: dict, a: Operand, b: Operand, y: Operand) -> Plan:
    """The plan of a MatMul or an Einsum (what the fused attention is made of)."""
    if op == "MatMul":
        return matmul_plan(a, b, y)
    if op == "Einsum":
        return einsum_plan(str(attrs.get("equation")), a, b, y)
    raise NotSupported(f"{op} is not a batched product")

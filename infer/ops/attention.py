"""Attention, fused (passes.fuse_transformer): O = softmax(scale * Q K^T + biases) V in one
pass, the scores never written out.

One workgroup per (batch element, block of 64 queries) loads that element's keys and values
into workgroup memory, then each invocation walks the keys for its query with a running
maximum and sum (the online softmax of FlashAttention), so the Nq x Nk scores tensor and its
two extra passes (Softmax, then the second MatMul reading it back) are gone. Window
attention is where this fits: SwinIR / HAT windows of 8 x 8 = 64 tokens (HAT's overlapping
keys: 144), 8..32 channels per head, a few KiB of keys and values. Larger ones stay three
kernels (MatMul, Softmax, MatMul).

Q, K and V are read as the two products read them (products.py plans, through the strided
views passes.views composes: `qkv[0]` of a permuted tensor is no copy); each bias (relative
position bias, shifted-window mask) at its own broadcast strides over the scores.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..graph import Node
from ..layout import pad4
from .common import broadcast_strides, grid_for, pad_lanes_dispatch
from .products import einsum_shape, matmul_shape, operand, output, plan_for, rows
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, register

TEMPLATE = "attention.wgsl"
WG = 64  # queries per workgroup
MAX_HEAD = 64  # channels per head a kernel keeps in registers (q and the accumulator)


def fits_workgroup_memory(nk: int, d: int, dv: int, limits: dict[str, int]) -> bool:
    """Whether one batch element's keys (nk x d) and values (nk x dv), channels padded to 4,
    fit in workgroup memory (16 KiB: WebGPU's guaranteed minimum, unless the device says
    more)."""
    budget = limits.get("max-compute-workgroup-storage-size", 16384)
    return d <= MAX_HEAD and dv <= MAX_HEAD and 4 * nk * (pad4(d) + pad4(dv)) <= budget


def _product_shape(op: str, attrs: dict, a: tuple[int, ...], b: tuple[int, ...]) -> tuple:
    if op == "Einsum":
        return einsum_shape(str(attrs.get("equation")), a, b)
    return matmul_shape(a, b)


def _attention_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    op2, attrs2 = node.attrs["second"]
    return [_product_shape(op2, attrs2, tuple(node.attrs["scores"]), ins[2].shape)]


def _numpy_product(op: str, attrs: dict, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if op == "Einsum":
        return np.einsum(str(attrs.get("equation")), a, b)
    return np.matmul(a, b)


def _attention_eval(node: Node, arrays: list, opset: int) -> list[np.ndarray]:
    q, k, v, *biases = (np.asarray(a, np.float64) for a in arrays)
    op1, attrs1 = node.attrs["first"]
    op2, attrs2 = node.attrs["second"]
    s = _numpy_product(op1, attrs1, q, k) * float(node.attrs["scale"])
    for b in biases:
        s = s + b
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return [_numpy_product(op2, attrs2, p, v).astype(np.float32)]


def _attention_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    q, k, v = (operand(ctx, node, j) for j in range(3))
    o = output(ctx, node)
    op1, attrs1 = node.attrs["first"]
    op2, attrs2 = node.attrs["second"]
    scores = rows("scores", tuple(node.attrs["scores"]))
    plan1 = plan_for(op1, attrs1, q, k, scores)
    plan2 = plan_for(op2, attrs2, rows("p", scores.shape), v, o)
    nq, nk, d, dv = plan1["m"], plan1["n"], plan1["k"], plan2["n"]
    if not fits_workgroup_memory(nk, d, dv, ctx.limits) or 0 in (nq, nk, d, dv):
        raise NotSupported(f"{nk} keys of {d} + {dv} channels do not fit in workgroup memory")
    biases = node.inputs[3:]
    bias_strides = [broadcast_strides(ctx.shape(b), scores.shape, ctx.layout(b)) for b in biases]
    nb = len(scores.shape) - 2
    batch: list[dict[str, Any]] = []
    kept = [j for j in range(nb) if plan1["batch"][j][0] > 1]
    for pos, j in enumerate(kept):
        n, sq, sk, _ = plan1["batch"][j]
        _, _, sv, so = plan2["batch"][j]
        batch.append(
            {
                "n": n,
                "div": math.prod(plan1["batch"][i][0] for i in kept[pos + 1 :]),
                "q": sq,
                "k": sk,
                "v": sv,
                "o": so,
                "b": [bs[j] for bs in bias_strides],
            }
        )
    batches = math.prod(b["n"] for b in batch)
    blocks = -(-nq // WG)
    grid, pitch = grid_for(batches * blocks, 1)
    variables = {
        "pitch": pitch,
        "groups": batches * blocks,
        "blocks": blocks,
        "wg": WG,
        "nq": nq,
        "nk": nk,
        "d": d,
        "dv": dv,
        "batch": batch,
        "q": plan1["a"],
        "k": (plan1["b"][1], plan1["b"][0]),  # (per key, per channel)
        "v": plan2["b"],
        "o": plan2["c"],
        "offsets": (q.offset, k.offset, v.offset),
        "biases": [{"i": bs[-2], "j": bs[-1]} for bs in bias_strides],
        "scale": float(node.attrs["scale"]),
    }
    bindings = [ctx.data_binding(t.name, f"{node.name}/{t.name}") for t in (q, k, v)]
    bindings += [ctx.data_binding(b, f"{node.name}/{b}") for b in biases]
    bindings.append(Binding("out", o.name))
    flops = 2.0 * batches * nq * nk * (d + dv)
    out = [Dispatch(TEMPLATE, variables, bindings, grid, node.name, flops)]
    return out + pad_lanes_dispatch(o.name, ctx.shape(o.name), ctx.layout(o.name), node.name)


register(
    "Attention",
    infer=_attention_infer,
    evaluate=_attention_eval,
    build=_attention_build,
    domain="ai.framesmith",
    any_layout=True,
)

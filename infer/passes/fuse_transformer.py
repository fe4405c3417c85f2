"""Rewrites for the blocks of the networks users bring: what their exporters write out as many
small nodes becomes one kernel.

- x * sigmoid(x) -> SiLU (then fusable into the conv before it: SPAN, Omni-SR's SE);
- the channel LayerNorm NAFNet, SAFMN and Omni-SR write out (ReduceMean, Sub, Pow,
  ReduceMean, Add eps, Sqrt, Div, then Mul weight, Add bias) -> one LayerNormAxes node: one
  row kernel instead of nine passes over the tensor;
- MatMul + Add of a constant bias (nn.Linear) -> MatMul with a bias;
- attention, MatMul(q, k) (times a scale) (plus biases: relative position, shift mask) ->
  Softmax -> MatMul(., v) -> one Attention node whose kernel keeps a window's keys and
  values in workgroup memory and never writes the scores out (ops/attention.py);
- for that, constant biases added across a pair of Reshapes (SwinIR's shifted-window mask is
  added to a (B, nW, heads, N, N) view of the (B*nW, heads, N, N) scores) are moved to the
  scores' own shape, so the Reshapes cancel.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Node
from ..ops.attention import fits_workgroup_memory
from ..ops.norm import norm_axes
from ..ops.products import plan_for, rows
from ..ops.reduce import reduce_axes
from ..ops.registry import NotSupported, Value
from .edit import add_const, scalar_const, single_consumer

FRAMESMITH = "ai.framesmith"


def _const_input(values: dict[str, Value], node: Node) -> tuple[str, str] | None:
    """(the non-constant input, the constant one) of a binary node with exactly one constant."""
    a, b = node.inputs[0], node.inputs[1]
    ca, cb = values[a].const is not None, values[b].const is not None
    if ca == cb:
        return None
    return (b, a) if ca else (a, b)


def _rebuild(graph: Graph, swap: dict[int, Node | None]) -> None:
    """Apply a pass's edits in one sweep: each node in `swap` is replaced (None: removed).
    (Editing the list per match, index and remove, made a long graph quadratic.)"""
    if swap:
        graph.nodes = [
            new
            for n in graph.nodes
            if (new := swap.get(id(n), n)) is not None
        ]  # fmt: skip


def recognise_silu(graph: Graph, values: dict[str, Value]) -> None:
    consumers = graph.consumers()  # one map: a match touches only its own two nodes
    swap: dict[int, Node | None] = {}
    for sig in graph.nodes:
        if sig.op_type != "Sigmoid" or id(sig) in swap:
            continue
        x, s = sig.inputs[0], sig.outputs[0]
        mul = single_consumer(graph, s, consumers)
        if mul is None or mul.op_type != "Mul" or sorted(mul.inputs) != sorted([x, s]):
            continue
        swap[id(mul)] = Node("SiLU", f"{mul.name}/silu", [x], list(mul.outputs), domain=FRAMESMITH)
        swap[id(sig)] = None
    _rebuild(graph, swap)


def recognise_gelu(graph: Graph, values: dict[str, Value]) -> None:
    """The exact GELU as opset 17 exports it: x * (erf(x / sqrt(2)) + 1) * 0.5 -> Gelu."""
    producers, consumers = graph.producers(), graph.consumers()
    swap: dict[int, Node | None] = {}
    for erf in graph.nodes:
        if erf.op_type != "Erf" or id(erf) in swap:
            continue
        div = producers.get(erf.inputs[0])
        split = _const_input(values, div) if div is not None and div.op_type == "Div" else None
        if div is None or split is None or split[1] != div.inputs[1]:
            continue
        if abs((scalar_const(values, split[1]) or 0.0) - 2**0.5) > 1e-4:
            continue
        x = split[0]
        add = single_consumer(graph, erf.outputs[0], consumers)
        one = _const_input(values, add) if add is not None and add.op_type == "Add" else None
        if add is None or one is None or scalar_const(values, one[1]) != 1.0:
            continue
        mul = single_consumer(graph, add.outputs[0], consumers)
        if mul is None or mul.op_type != "Mul" or sorted(mul.inputs) != sorted([x, add.outputs[0]]):
            continue
        half = single_consumer(graph, mul.outputs[0], consumers)
        h = _const_input(values, half) if half is not None and half.op_type == "Mul" else None
        if half is None or h is None or scalar_const(values, h[1]) != 0.5:
            continue
        if single_consumer(graph, div.outputs[0], consumers) is not erf:
            continue
        swap[id(half)] = Node("Gelu", f"{erf.name}/gelu", [x], list(half.outputs))
        swap.update({id(n): None for n in (div, erf, add, mul)})
    _rebuild(graph, swap)


# ---- the written-out LayerNorm -----------------------------------------------------------


def _mean_axes(graph: Graph, values: dict[str, Value], node: Node) -> list[int] | None:
    if node.op_type != "ReduceMean" or not int(node.attr("keepdims", 1)):
        return None
    axes_input = values[node.inputs[1]].const if len(node.inputs) > 1 and node.inputs[1] else None
    try:
        return reduce_axes(node, len(values[node.inputs[0]].shape), axes_input)
    except NotSupported:
        return None


def _per_axes(values: dict[str, Value], name: str, rank: int, axes: list[int]) -> bool:
    """Whether a constant varies only along `axes` (a weight the normalisation can absorb)."""
    c = values[name].const
    if c is None or np.ndim(c) > rank:
        return False
    shape = (1,) * (rank - np.ndim(c)) + tuple(np.shape(c))
    return all(d == 1 for k, d in enumerate(shape) if k not in axes)


def fuse_written_layernorm(graph: Graph, values: dict[str, Value]) -> None:
    gone: set[int] = set()  # nodes an earlier match took (a list lookup each was quadratic)
    for r1 in list(graph.nodes):
        if id(r1) in gone:
            continue
        axes = _mean_axes(graph, values, r1)
        if axes is None:
            continue
        x = r1.inputs[0]
        sub = single_consumer(graph, r1.outputs[0])
        if sub is None or sub.op_type != "Sub" or sub.inputs != [x, r1.outputs[0]]:
            continue
        d = sub.outputs[0]
        users = graph.consumers().get(d, [])
        if len(users) != 2 or d in graph.outputs:
            continue
        sq = next((u for u in users if u.op_type in ("Pow", "Mul")), None)
        div = next((u for u in users if u.op_type == "Div"), None)
        if sq is None or div is None or div.inputs[0] != d:
            continue
        if sq.op_type == "Pow" and (sq.inputs[0] != d or scalar_const(values, sq.inputs[1]) != 2):
            continue
        if sq.op_type == "Mul" and sq.inputs != [d, d]:
            continue
        r2 = single_consumer(graph, sq.outputs[0])
        if r2 is None or _mean_axes(graph, values, r2) != axes:
            continue
        add = single_consumer(graph, r2.outputs[0])
        split = _const_input(values, add) if add is not None and add.op_type == "Add" else None
        eps = scalar_const(values, split[1]) if split is not None else None
        if add is None or eps is None:
            continue
        sqrt = single_consumer(graph, add.outputs[0])
        if (
            sqrt is None
            or sqrt.op_type != "Sqrt"
            or single_consumer(graph, sqrt.outputs[0]) is not div
        ):
            continue
        chain = [r1, sub, sq, r2, add, sqrt, div]
        rank = len(values[x].shape)
        out = div.outputs[0]
        scale = bias = None
        mul = single_consumer(graph, out)
        mw = _const_input(values, mul) if mul is not None and mul.op_type == "Mul" else None
        if mul is not None and mw is not None and _per_axes(values, mw[1], rank, axes):
            scale, out = mw[1], mul.outputs[0]
            chain.append(mul)
            badd = single_consumer(graph, out)
            ab = _const_input(values, badd) if badd is not None and badd.op_type == "Add" else None
            if badd is not None and ab is not None and _per_axes(values, ab[1], rank, axes):
                bias, out = ab[1], badd.outputs[0]
                chain.append(badd)
        if scale is None:
            scale = add_const(graph, values, f"{r1.name}/ones", np.ones((), np.float32))
        inputs = [x, scale] + ([bias] if bias is not None else [])
        ln = Node(
            "LayerNormAxes",
            f"{r1.name}/layernorm",
            inputs,
            [out],
            {"axes": axes, "epsilon": eps},
            FRAMESMITH,
        )
        graph.nodes[graph.nodes.index(chain[-1])] = ln
        for n in chain[:-1]:
            graph.nodes.remove(n)
        gone.update(id(n) for n in chain)


# ---- MatMul + bias -----------------------------------------------------------------------


def fuse_matmul_bias(graph: Graph, values: dict[str, Value]) -> None:
    for mm in list(graph.nodes):
        if mm.op_type != "MatMul" or len(mm.inputs) != 2 or "_activation" in mm.attrs:
            continue
        y = mm.outputs[0]
        shape = values[y].shape
        if len(shape) < 2 or any(len(values[i].shape) < 2 for i in mm.inputs):
            continue
        add = single_consumer(graph, y)
        split = _const_input(values, add) if add is not None and add.op_type == "Add" else None
        if add is None or split is None or split[0] != y:
            continue
        bshape = values[split[1]].shape
        if len(bshape) > len(shape) or np.broadcast_shapes(bshape, shape) != shape:
            continue
        mm.inputs = [*mm.inputs, split[1]]
        mm.outputs = list(add.outputs)
        graph.nodes.remove(add)


# ---- biases across Reshapes, then attention ----------------------------------------------


def hoist_bias_through_views(graph: Graph, values: dict[str, Value]) -> None:
    """Add(X, c1) -> Reshape -> Add(., c2) -> Reshape back to X's shape: c2 moves to X's
    shape (as a broadcast view, no bigger than it was) and both Reshapes go."""
    for add2 in list(graph.nodes):
        if add2.op_type != "Add" or add2 not in graph.nodes:
            continue
        split = _const_input(values, add2)
        producers = graph.producers()
        r1 = producers.get(split[0]) if split is not None else None
        if split is None or r1 is None or r1.op_type != "Reshape":
            continue
        r2 = single_consumer(graph, add2.outputs[0])
        if r2 is None or r2.op_type != "Reshape" or single_consumer(graph, r1.outputs[0]) is None:
            continue
        x = r1.inputs[0]
        s1, s2 = values[x].shape, values[r1.outputs[0]].shape
        if values[r2.outputs[0]].shape != s1 or values[add2.outputs[0]].shape != s2:
            continue
        c2 = np.broadcast_to(np.asarray(values[split[1]].const, np.float32), s2)
        try:
            view = c2.view()
            view.shape = s1  # raises if that would need a copy
        except AttributeError:
            continue
        compact = view[tuple(slice(0, 1) if st == 0 else slice(None) for st in view.strides)]
        name = add_const(graph, values, f"{add2.name}/hoisted", np.ascontiguousarray(compact))
        new = Node("Add", add2.name, [x, name], list(r2.outputs))
        graph.nodes[graph.nodes.index(r2)] = new
        graph.nodes.remove(add2)
        graph.nodes.remove(r1)


def _product(node: Node | None) -> bool:
    """A plain two-operand MatMul or Einsum (no bias, no activation folded in yet)."""
    return (
        node is not None
        and node.op_type in ("MatMul", "Einsum")
        and len(node.inputs) == 2
        and "_activation" not in node.attrs
    )


def _attention_ok(values: dict[str, Value], p1: Node, p2: Node, limits: dict[str, int]) -> bool:
    """The two products read as one attention: p1 = Q K^T with the keys on its output's last
    axis, p2 = P V reading the scores P (p1's shape, row-major) as its A operand."""
    q, kb, v = (values[i].shape for i in (p1.inputs[0], p1.inputs[1], p2.inputs[1]))
    s_shape, o_shape = values[p1.outputs[0]].shape, values[p2.outputs[0]].shape
    try:
        plan1 = plan_for(p1.op_type, p1.attrs, rows("q", q), rows("k", kb), rows("s", s_shape))
        plan2 = plan_for(p2.op_type, p2.attrs, rows("p", s_shape), rows("v", v), rows("o", o_shape))
    except (NotSupported, ValueError):
        return False
    sr = rows("s", s_shape).strides
    if len(s_shape) < 2 or plan1["c"] != (sr[-2], sr[-1]) or plan2["a"] != (sr[-2], sr[-1]):
        return False
    b1 = [(n, c) for n, _, _, c in plan1["batch"] if n > 1]
    b2 = [(n, a) for n, a, _, _ in plan2["batch"] if n > 1]
    if b1 != b2 or plan1["m"] != plan2["m"] or plan1["n"] != plan2["k"]:
        return False
    return fits_workgroup_memory(plan1["n"], plan1["k"], plan2["n"], limits)


def fuse_attention(graph: Graph, values: dict[str, Value], limits: dict[str, int]) -> None:
    for sm in list(graph.nodes):
        if sm.op_type != "Softmax" or sm not in graph.nodes:
            continue
        rank = len(values[sm.inputs[0]].shape)
        if norm_axes(sm, rank, graph.opset) != [rank - 1]:
            continue
        p2 = single_consumer(graph, sm.outputs[0])
        if p2 is None or not _product(p2) or p2.inputs[0] != sm.outputs[0]:
            continue
        producers = graph.producers()
        chain: list[Node] = []
        t: str | None = sm.inputs[0]
        p1 = producers.get(sm.inputs[0])
        while p1 is not None and not _product(p1):
            ok = p1.op_type in ("Add", "Mul", "Div") and len(chain) < 4
            if not ok or t is None or single_consumer(graph, t) is None:
                p1 = None
                break
            chain.append(p1)
            t = _chain_input(values, p1)
            p1 = producers.get(t) if t is not None else None
        if p1 is None or single_consumer(graph, p1.outputs[0]) is None:
            continue
        steps = _score_steps(values, chain[::-1], p1.outputs[0])
        if steps is None or not _attention_ok(values, p1, p2, limits):
            continue
        scale, biases = steps
        q = p1.inputs[0]
        qmul = producers.get(q)
        if qmul is not None and qmul.op_type in ("Mul", "Div") and single_consumer(graph, q) is p1:
            split = _const_input(values, qmul)
            c = scalar_const(values, split[1]) if split is not None else None
            by_mul = qmul.op_type == "Mul"
            if (
                split is not None
                and c is not None
                and (by_mul or (c != 0 and qmul.inputs[1] == split[1]))
            ):
                scale *= c if by_mul else 1.0 / c
                q = split[0]
                graph.nodes.remove(qmul)
        attrs = {
            "scale": scale,
            "first": (p1.op_type, dict(p1.attrs)),
            "second": (p2.op_type, dict(p2.attrs)),
            "scores": values[p1.outputs[0]].shape,
        }
        node = Node(
            "Attention",
            f"{p2.name}/attention",
            [q, p1.inputs[1], p2.inputs[1], *biases],
            list(p2.outputs),
            attrs,
            FRAMESMITH,
        )
        graph.nodes[graph.nodes.index(p2)] = node
        for n in [p1, *chain, sm]:
            graph.nodes.remove(n)


def _chain_input(values: dict[str, Value], node: Node) -> str | None:
    """The input of a score-chain node that carries the scores: the one GPU tensor of the
    output's shape (the other input is the scale or a bias); None when that is ambiguous."""
    out = values[node.outputs[0]].shape
    found = [i for i in node.inputs if values[i].const is None and values[i].shape == out]
    return found[0] if len(found) == 1 else None


def _score_steps(
    values: dict[str, Value], chain: list[Node], scores: str
) -> tuple[float, list[str]] | None:
    """(scale, biases) of scores -> [Mul/Div by a scalar, Add of a bias]* -> softmax, in
    forward order; None when a bias would need scaling or broadcasts the scores bigger."""
    scale = 1.0
    biases: list[str] = []
    shape = values[scores].shape
    t = scores
    for node in chain:
        other = node.inputs[1] if node.inputs[0] == t else node.inputs[0]
        if node.op_type in ("Mul", "Div"):
            c = scalar_const(values, other)
            if (
                c is None
                or biases
                or (node.op_type == "Div" and (c == 0 or node.inputs[1] != other))
            ):
                return None
            scale *= c if node.op_type == "Mul" else 1.0 / c
        else:
            bshape = values[other].shape
            if len(bshape) > len(shape) or np.broadcast_shapes(bshape, shape) != shape:
                return None
            biases.append(other)
        t = node.outputs[0]
    return scale, biases

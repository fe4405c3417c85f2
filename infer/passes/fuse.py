"""Rewrites that make fewer, bigger kernels: each is a small function over the graph."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..graph import Graph, Node
from ..ops.registry import NotSupported, Value
from ..ops.unary import UNARY_ACTIVATIONS, activation_spec
from .edit import add_const, remove_dead_nodes, rename_input, single_consumer
from .fuse_transformer import (
    fuse_attention,
    fuse_matmul_bias,
    fuse_written_layernorm,
    hoist_bias_through_views,
    recognise_gelu,
    recognise_silu,
)
from .scatter import scatter_to_concat

FUSABLE_PRODUCERS = ("Conv", "ConvTranspose", "MatMul")


def fuse(graph: Graph, values: dict[str, Value], limits: dict[str, int] | None = None) -> None:
    remove_identities(graph)
    scatter_to_concat(graph, values)
    fold_batchnorm_into_conv(graph, values)
    recognise_silu(graph, values)
    recognise_gelu(graph, values)
    fuse_written_layernorm(graph, values)
    merge_reshapes(graph, values)
    hoist_bias_through_views(graph, values)
    merge_reshapes(graph, values)
    fuse_attention(graph, values, limits or {})
    fuse_matmul_bias(graph, values)
    fuse_activations(graph, values)
    lower_conv_transpose(graph, values)
    recognise_pixel_shuffle(graph, values)
    remove_dead_nodes(graph)


def remove_identities(graph: Graph) -> None:
    """In one pass over the graph (a chain of thousands of Identity nodes must not take
    quadratic time): each removed node's output is renamed to its source, chains followed."""
    renamed: dict[str, str] = {}
    kept = []
    outputs = set(graph.outputs)
    for node in graph.nodes:
        node.inputs = [renamed.get(i, i) for i in node.inputs]
        if node.op_type in ("Identity", "Dropout") and node.outputs[0] not in outputs:
            renamed[node.outputs[0]] = node.inputs[0]
        else:
            kept.append(node)  # (an output must be its own buffer)
    graph.nodes = kept


def fold_batchnorm_into_conv(graph: Graph, values: dict[str, Value]) -> None:
    producers, consumers = graph.producers(), graph.consumers()
    removed: set[int] = set()
    for bn in graph.nodes:
        if bn.op_type != "BatchNormalization" or len([o for o in bn.outputs if o]) != 1:
            continue
        conv = producers.get(bn.inputs[0])
        if conv is None or conv.op_type != "Conv" or "_activation" in conv.attrs:
            continue
        if single_consumer(graph, conv.outputs[0], consumers) is not bn:
            continue
        consts = [values[i].const for i in bn.inputs[1:5]]
        w = values[conv.inputs[1]].const
        if w is None or any(c is None for c in consts):
            continue
        scale, beta, mean, var = (np.asarray(c, np.float64) for c in consts)
        inv = scale / np.sqrt(var + float(bn.attr("epsilon", 1e-5)))
        oc = w.shape[0]
        b = values[conv.inputs[2]].const if len(conv.inputs) > 2 and conv.inputs[2] else None
        b = np.zeros(oc) if b is None else np.asarray(b, np.float64)
        new_w = (w * inv.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
        new_b = ((b - mean) * inv + beta).astype(np.float32)
        wname, bname = f"{conv.name}/bn_w", f"{conv.name}/bn_b"
        for name, arr in ((wname, new_w), (bname, new_b)):
            graph.constants[name] = arr
            values[name] = Value(arr.shape, arr)
        conv.inputs = [conv.inputs[0], wname, bname]
        conv.outputs = [bn.outputs[0]]
        producers[bn.outputs[0]] = conv
        removed.add(id(bn))
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]


def _per_channel_slope(slope: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray | None:
    """The slope as one value per channel, if it broadcasts along the channel axis only."""
    if len(x_shape) < 2:
        return None
    rank = len(x_shape)
    s = np.asarray(slope, np.float32)
    if s.ndim > rank:
        return None
    shape = (1,) * (rank - s.ndim) + s.shape
    if any(d != 1 for k, d in enumerate(shape) if k != 1):
        return None
    return np.broadcast_to(s.reshape(-1), (x_shape[1],)).copy()


def fuse_activations(graph: Graph, values: dict[str, Value]) -> None:
    # one consumers map for the pass: a fused activation's removal leaves only its producer's
    # old output name stale, and that producer is not visited again
    consumers = graph.consumers()
    removed: set[int] = set()
    for node in graph.nodes:
        if node.op_type not in FUSABLE_PRODUCERS or "_activation" in node.attrs:
            continue
        if id(node) in removed:
            continue
        act = single_consumer(graph, node.outputs[0], consumers)
        if act is None or act.inputs[0] != node.outputs[0]:
            continue
        if act.op_type == "PRelu":
            if node.op_type == "MatMul":
                continue  # the product kernel has no per-channel slope table
            slope = values[act.inputs[1]].const
            per_channel = (
                None if slope is None else _per_channel_slope(slope, values[node.outputs[0]].shape)
            )
            if per_channel is None:
                continue
            spec = {"kind": "PRelu", "slope": per_channel}
        elif act.op_type == "SiLU" or (
            act.op_type in UNARY_ACTIVATIONS and act.op_type not in ("Identity", "Dropout")
        ):
            try:
                spec = activation_spec(act, lambda n: values[n].const if n else None)
            except NotSupported:
                continue
        else:
            continue
        node.attrs["_activation"] = spec
        node.outputs = [act.outputs[0]]
        removed.add(id(act))
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]


def lower_conv_transpose(graph: Graph, values: dict[str, Value]) -> None:
    """A 2-D ConvTranspose of stride s becomes a Conv to s*s*C channels, DepthToSpace and a crop.

    Output row s*q + r of a transposed conv sums input rows q - j times kernel rows s*j + r:
    for each phase r that is an ordinary conv of the input with a ceil(k/s)-tap kernel. All s*s
    phases are one Conv (phase-major channels, as DepthToSpace CRD wants), so the upsampling
    layers of FSRCNN or a UNet run on the tiled conv kernel instead of the generic
    one-output-element-per-invocation kernel (which stays for grouped, dilated, unequal-stride
    and non-2-D cases). The fused activation moves to the Conv (it commutes with the shuffle).
    """
    from ..ops.conv import convt_geometry  # the one place ConvTranspose geometry is worked out

    for node in list(graph.nodes):
        if node.op_type != "ConvTranspose" or len(node.inputs) < 2:
            continue
        x, y = node.inputs[0], node.outputs[0]
        w = values[node.inputs[1]].const
        if w is None or len(values[x].shape) != 4 or int(node.attr("group", 1)) != 1:
            continue
        try:
            geo = convt_geometry(node, values[x].shape, w.shape)
        except NotSupported:
            continue
        (sh, sw), (kh, kw) = geo["s"], geo["k"]
        if sh != sw or any(d != 1 for d in geo["d"]) or tuple(w.shape[2:]) != (kh, kw):
            continue
        s = sh
        ic, oc = w.shape[0], w.shape[1]
        (ih, iw), (oh, ow) = geo["ins"], geo["outs"]
        pt, pl = geo["pads"][0], geo["pads"][1]
        kq = [-(-kh // s), -(-kw // s)]  # taps per phase
        wc = np.zeros((oc, s, s, ic, kq[0], kq[1]), np.float32)
        for rh in range(s):
            for rw in range(s):
                for th in range(kq[0]):
                    for tw in range(kq[1]):
                        ky, kx = s * (kq[0] - 1 - th) + rh, s * (kq[1] - 1 - tw) + rw
                        if ky < kh and kx < kw:
                            wc[:, rh, rw, :, th, tw] = w[:, :, ky, kx].T
        wc = wc.reshape(oc * s * s, ic, kq[0], kq[1])
        # rows past every input contribution hold the bias alone: pad the end until the
        # shuffled map reaches the last output row
        extra = [
            max(0, -(-(p + o - s * (i + k - 1)) // s))
            for p, o, i, k in ((pt, oh, ih, kq[0]), (pl, ow, iw, kq[1]))
        ]
        qh, qw = ih + kq[0] - 1 + extra[0], iw + kq[1] - 1 + extra[1]
        bias = values[node.inputs[2]].const if len(node.inputs) > 2 and node.inputs[2] else None
        b = np.zeros(oc, np.float32) if bias is None else np.asarray(bias, np.float32)
        base = f"{node.name}/subpixel"
        inputs = [
            x,
            add_const(graph, values, f"{base}/w", wc),
            add_const(graph, values, f"{base}/b", np.repeat(b, s * s)),
        ]
        attrs: dict[str, Any] = {
            "pads": [kq[0] - 1, kq[1] - 1, kq[0] - 1 + extra[0], kq[1] - 1 + extra[1]]
        }
        if "_activation" in node.attrs:
            act = dict(node.attrs["_activation"])
            if act["kind"] == "PRelu":
                act["slope"] = np.repeat(np.asarray(act["slope"], np.float32), s * s)
            attrs["_activation"] = act
        n = values[x].shape[0]
        crop = (pt, pl, oh, ow) != (0, 0, s * qh, s * qw)
        conv_out = f"{base}/phases" if s > 1 or crop else y
        new = [Node("Conv", f"{base}/conv", inputs, [conv_out], attrs)]
        values[conv_out] = Value((n, oc * s * s, qh, qw))
        shuffled = conv_out
        if s > 1:
            shuffled = f"{base}/shuffled" if crop else y
            new.append(
                Node("DepthToSpace", f"{base}/shuffle", [conv_out], [shuffled],
                     {"blocksize": s, "mode": "CRD"})
            )  # fmt: skip
            values[shuffled] = Value((n, oc, s * qh, s * qw))
        if crop:
            i64 = np.int64
            new.append(
                Node(
                    "Slice",
                    f"{base}/crop",
                    [
                        shuffled,
                        add_const(graph, values, f"{base}/starts", np.array([pt, pl], i64)),
                        add_const(graph, values, f"{base}/ends", np.array([pt + oh, pl + ow], i64)),
                        add_const(graph, values, f"{base}/axes", np.array([2, 3], i64)),
                    ],
                    [y],
                )
            )
        idx = graph.nodes.index(node)
        graph.nodes[idx : idx + 1] = new


RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def merge_reshapes(graph: Graph, values: dict[str, Value]) -> None:
    """A chain of Reshape / Flatten / Squeeze / Unsqueeze is one Reshape to the last shape
    (they all relabel the same row-major order), and a Reshape to the input's own shape is
    no node at all. F.pixel_unshuffle exports as Unsqueeze, Reshape, Reshape, Transpose,
    Reshape, Squeeze: after this it is Reshape, Transpose, Reshape, which
    recognise_pixel_shuffle knows."""
    changed = True
    while changed:
        changed = False
        producers = graph.producers()
        for node in list(graph.nodes):
            if node.op_type not in RESHAPES or not node.inputs or node not in graph.nodes:
                continue
            src = node.inputs[0]
            prev = producers.get(src)
            if prev is not None and prev.op_type in RESHAPES and single_consumer(graph, src):
                src = prev.inputs[0]
                graph.nodes.remove(prev)
                changed = True
            y = node.outputs[0]
            shape = values[y].shape
            if values[src].shape == shape and y not in graph.outputs:
                graph.nodes.remove(node)
                rename_input(graph, y, src)
                changed = True
                producers = graph.producers()
                continue
            if node.op_type != "Reshape" or node.inputs[0] != src:
                name = f"{node.name}/shape"
                add_const(graph, values, name, np.array(shape, np.int64))
                idx = graph.nodes.index(node)
                graph.nodes[idx] = Node("Reshape", node.name, [src, name], [y])
                changed = True
            producers = graph.producers()


def _shuffle(src: tuple, mid: tuple, dst: tuple, perm: list[int]) -> tuple[str, str, int] | None:
    """(op, mode, block) when Reshape(src -> mid) -> Transpose(perm) -> Reshape(-> dst) is a
    pixel shuffle (DepthToSpace) or unshuffle (SpaceToDepth), else None."""
    if len(src) != 4 or len(mid) != 6 or len(dst) != 4:
        return None
    n, c, h, w = src
    if perm == [0, 1, 4, 2, 5, 3] and mid[2] == mid[3] and mid[4:] == (h, w):
        r = mid[2]
        if dst == (n, c // (r * r), h * r, w * r):
            return "DepthToSpace", "CRD", r
    if perm == [0, 3, 4, 1, 5, 2] and mid[1] == mid[2] and mid[4:] == (h, w):
        r = mid[1]
        if dst == (n, c // (r * r), h * r, w * r):
            return "DepthToSpace", "DCR", r
    if mid[:2] == (n, c) and mid[3] == mid[5] and mid[2] * mid[3] == h and mid[4] * mid[5] == w:
        r = mid[3]
        if dst == (n, c * r * r, h // r, w // r):
            if perm == [0, 1, 3, 5, 2, 4]:
                return "SpaceToDepth", "CRD", r
            if perm == [0, 3, 5, 1, 2, 4]:
                return "SpaceToDepth", "DCR", r
    return None


def recognise_pixel_shuffle(graph: Graph, values: dict[str, Value]) -> None:
    """Reshape -> Transpose -> Reshape as exported for PixelShuffle becomes DepthToSpace, and
    for pixel unshuffle (F.pixel_unshuffle, basicsr's view/permute/reshape) SpaceToDepth: one
    copy kernel instead of three."""
    for t in list(graph.nodes):
        if t.op_type != "Transpose" or t not in graph.nodes:
            continue
        producers = graph.producers()
        r1 = producers.get(t.inputs[0])
        r2 = single_consumer(graph, t.outputs[0])
        if r1 is None or r2 is None or r1.op_type != "Reshape" or r2.op_type != "Reshape":
            continue
        if single_consumer(graph, r1.outputs[0]) is not t:
            continue
        src = values[r1.inputs[0]].shape
        mid = values[r1.outputs[0]].shape
        dst = values[r2.outputs[0]].shape
        found = _shuffle(src, mid, dst, [int(p) for p in t.attrs.get("perm", [])])
        if found is None:
            continue
        op, mode, r = found
        label = "pixel_shuffle" if op == "DepthToSpace" else "pixel_unshuffle"
        new = Node(
            op,
            f"{t.name}/{label}",
            [r1.inputs[0]],
            list(r2.outputs),
            {"blocksize": r, "mode": mode},
        )
        idx = graph.nodes.index(r2)
        graph.nodes[idx] = new
        graph.nodes.remove(t)
        graph.nodes.remove(r1)

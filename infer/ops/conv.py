"""Conv and ConvTranspose.

Kernel choice follows an ordered chain of `can_apply` rules: the pack-4 tiled kernel for 2-D
convs with one group, the generic kernel for the rest (grouped, depthwise, 1-D and 3-D).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..graph import Node
from ..layout import logical_strides, pad4
from .common import grid_for, index_vars
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, attr_ints, register
from .unary import NO_ACTIVATION

Shape = tuple[int, ...]
# output rows [r0, r1), input (offset, size) and output (offset, size) in bytes (None: all)
Band = tuple[int, int, int, int | None, int, int | None]

# Register tile: PX adjacent output pixels x OCB blocks of 4 output channels per invocation.
# Every input vec4 load feeds OCB mat4 FMAs per pixel: loads (gathers on lavapipe, memory
# traffic on a real GPU) are what limit a conv, not the FMAs.
# Chosen by measuring ESPCN at 640x360 on lavapipe (process CPU time, which other load on the
# machine does not skew): 8x2 beat 4x4, 4x2, 2x4 and 8x4 (spills) by 10-40%.
PX = 8
OCB = 2
WG = (8, 8)  # workgroup shape (columns of PX pixels, rows)


def _conv_geometry(node: Node, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> dict:
    nsp = len(x_shape) - 2
    if nsp < 1 or len(w_shape) != len(x_shape):
        raise NotSupported(f"input rank {len(x_shape)} / weight rank {len(w_shape)}")
    k = attr_ints(node, "kernel_shape") or list(w_shape[2:])
    s = attr_ints(node, "strides") or [1] * nsp
    d = attr_ints(node, "dilations") or [1] * nsp
    pads = attr_ints(node, "pads") or [0] * (2 * nsp)
    auto_pad = node.attr("auto_pad", "NOTSET")
    ins = list(x_shape[2:])
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nsp)
        for i in range(nsp):
            out = math.ceil(ins[i] / s[i])
            total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - ins[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[i + nsp] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * nsp)
    outs = [
        (ins[i] + pads[i] + pads[i + nsp] - (k[i] - 1) * d[i] - 1) // s[i] + 1 for i in range(nsp)
    ]
    if any(o <= 0 for o in outs):
        raise NotSupported(f"conv output would be empty ({outs})")
    return {"k": k, "s": s, "d": d, "pads": pads, "ins": ins, "outs": outs, "nsp": nsp}


def _conv_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    x, w = ins[0].shape, ins[1].shape
    group = int(node.attr("group", 1))
    if x[1] != w[1] * group:
        raise NotSupported(f"input has {x[1]} channels, weight expects {w[1]} x group {group}")
    geo = _conv_geometry(node, x, w)
    return [(x[0], w[0], *geo["outs"])]


def _slope_binding(node: Node, ctx: BuildContext, oc: int) -> list[Binding]:
    act = node.attrs.get("_activation", NO_ACTIVATION)
    if act["kind"] != "PRelu":
        return []
    slope = np.zeros(pad4(oc), np.float32)
    slope[:oc] = np.broadcast_to(np.asarray(act["slope"], np.float32).reshape(-1), (oc,))
    return [Binding("const", ctx.add_const(f"{node.name}/slope", slope), uniform=True)]


def _spatial3(values: list[int], fill: int) -> list[int]:
    return [fill] * (3 - len(values)) + list(values)


def _generic_vars(
    node: Node, ctx: BuildContext, x_shape: Shape, y_shape: Shape, geo: dict[str, Any]
) -> dict[str, Any]:
    nsp = geo["nsp"]
    xs = logical_strides(x_shape)
    sp = ["0u"] * (3 - nsp) + [f"o{2 + i}" for i in range(nsp)]
    pad_begin = geo["pads"][:nsp]
    return {
        "out": index_vars(y_shape),
        "k": _spatial3(geo["k"], 1),
        "s": _spatial3(geo["s"], 1),
        "d": _spatial3(geo["d"], 1),
        "p": _spatial3(pad_begin, 0),
        "isz": _spatial3(geo["ins"], 1),
        "xs": [xs[0], xs[1], *_spatial3(xs[2:], 0)],
        "sp": sp,
        "act": node.attrs.get("_activation", NO_ACTIVATION),
        "oc4": pad4(y_shape[1]) // 4,
    }


def _bias(node: Node, ctx: BuildContext, oc: int) -> np.ndarray:
    b = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    return np.zeros(oc, np.float32) if b is None else np.asarray(b, np.float32).reshape(oc)


def _conv_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x, wname = node.inputs[0], node.inputs[1]
    y = node.outputs[0]
    w = ctx.const(wname)
    if w is None:
        raise NotSupported("weights must be constant")
    x_shape, y_shape = ctx.shape(x), ctx.shape(y)
    geo = _conv_geometry(node, x_shape, w.shape)
    group = int(node.attr("group", 1))
    oc = w.shape[0]
    bias = _bias(node, ctx, oc)
    flops = 2.0 * math.prod(y_shape) * math.prod(w.shape[1:])
    if geo["nsp"] == 2 and group == 1:
        return _conv2d_packed(node, ctx, w, bias, geo, x_shape, y_shape, flops)
    variables = _generic_vars(node, ctx, x_shape, y_shape, geo)
    variables.update(icg=w.shape[1], ocg=oc // group)
    grid, pitch = grid_for(variables["out"]["total"])
    variables["pitch"] = pitch
    bindings = [
        Binding("in", x),
        Binding("const", ctx.add_const(f"{node.name}/w", w.astype(np.float32).ravel())),
        Binding("const", ctx.add_const(f"{node.name}/b", bias)),
        Binding("out", y),
        *_slope_binding(node, ctx, oc),
    ]
    return [Dispatch("conv_generic.wgsl", variables, bindings, grid, node.name, flops)]


def pack_conv2d_weights(w: np.ndarray, bstride: int, nblocks: int) -> np.ndarray:
    """OIHW -> [oc4][ky][kx][ic4] mat4x4 blocks, column j = input lane j, row i = output lane i.

    Each output-channel block is padded to `bstride` matrices so a chunk of blocks starts on
    a 256-byte boundary (uniform-buffer binding offsets must).
    """
    oc, ic, kh, kw = w.shape
    oc4, ic4 = pad4(oc) // 4, pad4(ic) // 4
    wp = np.zeros((oc4 * 4, ic4 * 4, kh, kw), np.float32)
    wp[:oc, :ic] = w
    # [oc4, i, ic4, j, ky, kx] -> [oc4, ky, kx, ic4, j, i]
    blocks = wp.reshape(oc4, 4, ic4, 4, kh, kw).transpose(0, 4, 5, 2, 3, 1)
    blocks = blocks.reshape(oc4, kh * kw * ic4, 16)
    out = np.zeros((max(nblocks, oc4), bstride, 16), np.float32)
    out[:oc4, : kh * kw * ic4] = blocks
    return out


def channel_blocks_per_invocation(oc4: int) -> int:
    """OCB for a conv with `oc4` output blocks: OCB, or all of them when there are at most 3.

    A last group only partly filled computes its empty blocks anyway: for the 12-channel
    output of a x2 upscaler (3 blocks) one group of 3 ran 1.4x faster than groups of 2.
    """
    return oc4 if oc4 <= 3 else min(OCB, oc4)


def _conv2d_packed(
    node: Node,
    ctx: BuildContext,
    w: np.ndarray,
    bias: np.ndarray,
    geo: dict[str, Any],
    x_shape: Shape,
    y_shape: Shape,
    flops: float,
) -> list[Dispatch]:
    n, ic = x_shape[0], x_shape[1]
    x, y = node.inputs[0], node.outputs[0]
    oc = w.shape[0]
    ic4, oc4 = pad4(ic) // 4, pad4(oc) // 4
    kh, kw = geo["k"]
    per_block = kh * kw * ic4
    bstride = (per_block + 3) // 4 * 4
    block_bytes = bstride * 64
    uniform_limit = ctx.limits["max-uniform-buffer-binding-size"]
    ocb = channel_blocks_per_invocation(oc4)
    weights_uniform = block_bytes * ocb <= uniform_limit
    if not weights_uniform:
        ocb = 1  # a storage buffer window of one block
    nblocks = math.ceil(oc4 / ocb) * ocb
    wkey = ctx.add_const(f"{node.name}/w4", pack_conv2d_weights(w, bstride, nblocks))
    bkey = ctx.add_const(f"{node.name}/b4", np.pad(bias, (0, oc4 * 4 - oc)))
    (ih, iw), (oh, ow) = geo["ins"], geo["outs"]
    variables = {
        "ih": ih,
        "iw": iw,
        "ic4": ic4,
        "oh": oh,
        "ow": ow,
        "oc4": oc4,
        "oc": oc,
        "kh": kh,
        "kw": kw,
        "sh": geo["s"][0],
        "sw": geo["s"][1],
        "dh": geo["d"][0],
        "dw": geo["d"][1],
        "pt": geo["pads"][0],
        "pl": geo["pads"][1],
        "px": PX,
        "wgx": WG[0],
        "wgy": WG[1],
        "ocb": ocb,
        "bstride": bstride,
        "wn": ocb * bstride,
        "weights_uniform": weights_uniform,
        "mask_lanes": oc % 4 != 0,
        "in_lanes": ic if ic4 == 1 else 4,
        "act": node.attrs.get("_activation", NO_ACTIVATION),
    }
    slope = _slope_binding(node, ctx, oc)
    bands = _row_bands(ctx, n, ih, iw, ic4, oh, ow, oc4, geo)
    dispatches = []
    gx = math.ceil(ow / (PX * WG[0]))
    for c0 in range(0, oc4, ocb):
        cn = min(ocb, oc4 - c0)
        wbind = Binding("const", wkey, c0 * block_bytes, ocb * block_bytes, weights_uniform)
        for r0, r1, in_off, in_size, out_off, out_size in bands:
            vec = 4 * ctx.esize  # bytes of one stored vec4
            params = np.array([c0, r0, in_off // vec, out_off // vec], np.uint32)
            pkey = ctx.add_const(f"{node.name}/params/{c0}/{r0}", params)
            bindings = [
                Binding("in", x, in_off, in_size),
                wbind,
                Binding("const", bkey, uniform=True),
                Binding("const", pkey, uniform=True),
                Binding("out", y, out_off, out_size),
                *slope,
            ]
            grid = (gx, math.ceil((r1 - r0) / WG[1]), n)
            label = node.name if len(bands) == 1 and c0 == 0 else f"{node.name}[{c0}:{r0}]"
            share = cn * (r1 - r0) / (oc4 * oh)
            dispatches.append(
                Dispatch("conv2d.wgsl", variables, bindings, grid, label, flops * share)
            )
    return dispatches


def _row_bands(
    ctx: BuildContext,
    n: int,
    ih: int,
    iw: int,
    ic4: int,
    oh: int,
    ow: int,
    oc4: int,
    geo: dict[str, Any],
) -> list[Band]:
    """Split output rows into bands whose input and output ranges fit one storage binding.

    Channels-last makes a band of rows one contiguous range, so a 1080p, 64-channel map that
    is larger than the device's binding limit is processed band by band instead of failing.
    """
    limit = ctx.limits["max-storage-buffer-binding-size"]
    in_row, out_row = iw * ic4 * 4 * ctx.esize, ow * oc4 * 4 * ctx.esize
    if n * ih * in_row <= limit and n * oh * out_row <= limit:
        return [(0, oh, 0, None, 0, None)]
    if n != 1:
        raise NotSupported("tensor exceeds the storage binding limit with batch > 1")
    sh, kh, dh, pt = geo["s"][0], geo["k"][0], geo["d"][0], geo["pads"][0]
    span = (kh - 1) * dh + 1
    rows = oh
    while rows > 1:
        in_rows = (rows - 1) * sh + span
        if (in_rows * in_row + 256) <= limit and rows * out_row + 256 <= limit:
            break
        rows = max(1, rows // 2)
    bands: list[Band] = []
    for r0 in range(0, oh, rows):
        r1 = min(oh, r0 + rows)
        lo = min(max(0, r0 * sh - pt), ih - 1)
        hi = min(ih, max(lo + 1, (r1 - 1) * sh - pt + span))
        in_off = lo * in_row // 256 * 256
        out_off = r0 * out_row // 256 * 256
        bands.append((r0, r1, in_off, hi * in_row - in_off, out_off, r1 * out_row - out_off))
    return bands


register("Conv", infer=_conv_infer, build=_conv_build, const_inputs=(1, 2))


# ---- ConvTranspose ----------------------------------------------------------------------


def convt_geometry(node: Node, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> dict:
    nsp = len(x_shape) - 2
    if nsp < 1 or nsp > 3:
        raise NotSupported(f"ConvTranspose with {nsp} spatial dims")
    group = int(node.attr("group", 1))
    k = attr_ints(node, "kernel_shape") or list(w_shape[2:])
    s = attr_ints(node, "strides") or [1] * nsp
    d = attr_ints(node, "dilations") or [1] * nsp
    op = attr_ints(node, "output_padding") or [0] * nsp
    pads = attr_ints(node, "pads") or [0] * (2 * nsp)
    auto_pad = node.attr("auto_pad", "NOTSET")
    ins = list(x_shape[2:])
    out_shape = attr_ints(node, "output_shape")
    if out_shape:
        out_shape = out_shape[-nsp:]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out_shape = [ins[i] * s[i] for i in range(nsp)]
    if out_shape:
        for i in range(nsp):
            total = s[i] * (ins[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - out_shape[i]
            half = total // 2
            if auto_pad == "SAME_UPPER":
                pads[i], pads[i + nsp] = half, total - half
            else:
                pads[i], pads[i + nsp] = total - half, half
        outs = list(out_shape)
    else:
        outs = [
            s[i] * (ins[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - pads[i] - pads[i + nsp]
            for i in range(nsp)
        ]
    return {
        "k": k,
        "s": s,
        "d": d,
        "pads": pads,
        "ins": ins,
        "outs": outs,
        "nsp": nsp,
        "oc": w_shape[1] * group,
    }


def _convt_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    x, w = ins[0].shape, ins[1].shape
    if x[1] != w[0]:
        raise NotSupported(f"input has {x[1]} channels, weight expects {w[0]}")
    geo = convt_geometry(node, x, w)
    return [(x[0], geo["oc"], *geo["outs"])]


def _convt_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x, y = node.inputs[0], node.outputs[0]
    w = ctx.const(node.inputs[1])
    if w is None:
        raise NotSupported("weights must be constant")
    x_shape, y_shape = ctx.shape(x), ctx.shape(y)
    geo = convt_geometry(node, x_shape, w.shape)
    group = int(node.attr("group", 1))
    oc = geo["oc"]
    variables = _generic_vars(node, ctx, x_shape, y_shape, geo)
    variables.update(icg=x_shape[1] // group, ocg=oc // group)
    grid, pitch = grid_for(variables["out"]["total"])
    variables["pitch"] = pitch
    flops = 2.0 * math.prod(x_shape) * math.prod(w.shape[1:])
    bindings = [
        Binding("in", x),
        Binding("const", ctx.add_const(f"{node.name}/w", w.astype(np.float32).ravel())),
        Binding("const", ctx.add_const(f"{node.name}/b", _bias(node, ctx, oc))),
        Binding("out", y),
        *_slope_binding(node, ctx, oc),
    ]
    return [Dispatch("conv_transpose.wgsl", variables, bindings, grid, node.name, flops)]


register("ConvTranspose", infer=_convt_infer, build=_convt_build, const_inputs=(1, 2))

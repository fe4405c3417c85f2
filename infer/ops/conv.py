"""Conv and ConvTranspose.

A 2-D conv with one group has several kernel variants, each with its own `can_apply`
(onnxruntime WebGPU's ordered fallback chain): the direct register-tiled kernel
(conv_direct, any size/stride/dilation), Winograd F(2,3) and F(4,3) for 3x3 stride 1
(conv_winograd), subgroup forms of the direct and F(2,3) kernels that load each weight once
per subgroup (`-sg`), and the shared-memory implicit GEMM (conv_tiled). Which of those that apply
runs is picked by `choose` (infer.ops.choice): measured on the device when a Model loads,
or by `rule_choice` when there is no device. Grouped, depthwise, 1-D and 3-D convs use the
generic kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..graph import Node
from ..layout import logical_strides, pad4
from .choice import choose
from .common import grid_for, index_vars
from .conv_direct import build_direct
from .conv_site import (
    ConvSite,
    conv_bias,
    conv_geometry,
    conv_site,
    slope_binding,
    trial_site,
)
from .conv_tiled import build_tiled, tiled_applies
from .conv_winograd import build_winograd, winograd_applies
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, attr_ints, register
from .unary import NO_ACTIVATION

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ConvVariant:
    name: str
    can_apply: Callable[[ConvSite, BuildContext], str | None]  # None, or why it cannot
    build: Callable[[ConvSite, BuildContext], list[Dispatch]]


def _always(site: ConvSite, ctx: BuildContext) -> str | None:
    return None


def _subgroups(ctx: BuildContext) -> str | None:
    """None when the device's subgroups can share weights (8 lanes or more)."""
    if ctx.limits.get("subgroup-size", 0) < 8:
        return "no subgroups of 8 lanes or more"
    return None


def _direct_sg(px: int, ocb: int, name: str) -> ConvVariant:
    def can_apply(site: ConvSite, ctx: BuildContext) -> str | None:
        return _subgroups(ctx)

    def build(site: ConvSite, ctx: BuildContext) -> list[Dispatch]:
        return build_direct(site, ctx, px, ocb, variant=name, sg=True)

    return ConvVariant(name, can_apply, build)


def _winograd(m: int, ocb: int, tx: int, name: str, sg: bool = False) -> ConvVariant:
    def can_apply(site: ConvSite, ctx: BuildContext) -> str | None:
        return (_subgroups(ctx) if sg else None) or winograd_applies(site, m)

    def build(site: ConvSite, ctx: BuildContext) -> list[Dispatch]:
        blocks = site.oc4 if site.oc4 <= 3 and tx > 1 else ocb
        return build_winograd(site, ctx, m, blocks, tx, variant=name, sg=sg)

    return ConvVariant(name, can_apply, build)


# The chain, in the order a rule would try them. Register tiles per invocation:
# - direct: 8 pixels x 2 output blocks (conv_direct), any conv.
# - winograd2 / winograd4: one F(2,3) / F(4,3) tile, 2 / 1 output blocks: 32 / 36 vec4
#   accumulators, what a GPU's register file holds (ncnn's shapes).
# - winograd2-wide: 4 F(2,3) tiles x 2 output blocks (all of them up to 3): on lavapipe a
#   weight costs a per-lane gather (~13 ns per mat4 per invocation, measured), so one weight
#   load has to feed several tiles; it spills on a GPU. Measured on lavapipe against direct,
#   alternated in one process (process CPU time, 320x180): 64->32 1.20x, 32->12 1.15x.
# - winograd2-sg: 4 F(2,3) (or F(2,5)) tiles x 4 output blocks, the weights loaded once per
#   subgroup (8 lanes each load a column of one of two matrices) and broadcast to every lane
#   (subgroupBroadcast: a register shuffle on lavapipe, where a uniform load indexed by a
#   loop counter is a gather per lane). Devices with subgroups of 8 or more lanes. Measured
#   on lavapipe, alternated in one process (process CPU time, 320x180), against
#   winograd2-wide / direct: 64->32 3x3 1.9x / 2.3x, 32->12 3x3 1.7x / 1.9x, 3->64 5x5 1.5x /
#   1.9x; 4 or 8 output blocks and 2, 4 or 8 tiles, or F(4,3), were within 10% of it.
# - direct-sg: the direct kernel with the same weight sharing, 8 pixels x 4 output blocks,
#   any conv: on lavapipe against direct 2.1x on a 32->64 3x3 stride-2 conv, 1.75x on a
#   64->32 3x3 (where winograd2-sg is faster still), 1.1x on a 56->12 1x1.
# - tiled: the shared-memory implicit GEMM (conv_tiled), for real GPUs.
VARIANTS = [
    ConvVariant("direct", _always, build_direct),
    _winograd(2, 4, 4, "winograd2-sg", sg=True),
    _direct_sg(8, 4, "direct-sg"),
    _winograd(2, 2, 1, "winograd2"),
    _winograd(2, 2, 4, "winograd2-wide"),
    _winograd(4, 1, 1, "winograd4"),
    ConvVariant("tiled", tiled_applies, build_tiled),
]
VARIANT_NAMES = tuple(v.name for v in VARIANTS)


def candidates(site: ConvSite, ctx: BuildContext) -> list[str]:
    """The variants that can compute this conv, in chain order."""
    return [v.name for v in VARIANTS if v.can_apply(site, ctx) is None]


def rule_choice(site: ConvSite, names: list[str]) -> str:
    """The pick without a device to measure on: the direct kernel, which every conv can use
    and which is never far from the best on any device measured (lavapipe). Measurement
    (infer.kernel_choice) is what selects Winograd or the tiled kernel."""
    return "direct"


def _variant(name: str) -> ConvVariant:
    return next(v for v in VARIANTS if v.name == name)


def _conv_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    x, w = ins[0].shape, ins[1].shape
    group = int(node.attr("group", 1))
    if x[1] != w[1] * group:
        raise NotSupported(f"input has {x[1]} channels, weight expects {w[1]} x group {group}")
    geo = conv_geometry(node, x, w)
    return [(x[0], w[0], *geo["outs"])]


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


def _conv_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x, wname = node.inputs[0], node.inputs[1]
    y = node.outputs[0]
    w = ctx.const(wname)
    if w is None:
        raise NotSupported("weights must be constant")
    x_shape, y_shape = ctx.shape(x), ctx.shape(y)
    geo = conv_geometry(node, x_shape, w.shape)
    group = int(node.attr("group", 1))
    oc = w.shape[0]
    if geo["nsp"] == 2 and group == 1:
        site = conv_site(node, ctx, w, geo)
        names = candidates(site, ctx)
        trial, trial_values = trial_site(site)
        pick = choose(
            ctx,
            node.name,
            site.key(),
            names,
            rule_choice(site, names),
            lambda name, c: _variant(name).build(trial, c),
            trial_values,
        )
        return _variant(pick).build(site, ctx)
    bias = conv_bias(node, ctx, oc)
    flops = 2.0 * math.prod(y_shape) * math.prod(w.shape[1:])
    variables = _generic_vars(node, ctx, x_shape, y_shape, geo)
    variables.update(icg=w.shape[1], ocg=oc // group)
    grid, pitch = grid_for(variables["out"]["total"])
    variables["pitch"] = pitch
    bindings = [
        Binding("in", x),
        Binding("const", ctx.add_const(f"{node.name}/w", w.astype(np.float32).ravel())),
        Binding("const", ctx.add_const(f"{node.name}/b", bias)),
        Binding("out", y),
        *slope_binding(node, ctx, oc),
    ]
    return [Dispatch("conv_generic.wgsl", variables, bindings, grid, node.name, flops)]


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
        Binding("const", ctx.add_const(f"{node.name}/b", conv_bias(node, ctx, oc))),
        Binding("out", y),
        *slope_binding(node, ctx, oc),
    ]
    return [Dispatch("conv_transpose.wgsl", variables, bindings, grid, node.name, flops)]


register("ConvTranspose", infer=_convt_infer, build=_convt_build, const_inputs=(1, 2))

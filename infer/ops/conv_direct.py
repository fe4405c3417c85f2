"""The direct register-tiled 2-D conv (shaders/ops/conv2d.wgsl): any kernel size, stride and
dilation, one group. Each invocation computes PX adjacent output pixels for OCB blocks of 4
output channels; weights are read with uniform indices from a uniform buffer, or, with `sg`,
loaded once per subgroup and broadcast to its lanes (see conv_winograd's docstring).
"""

from __future__ import annotations

import math

import numpy as np

from ..layout import pad4
from .conv_site import ConvSite, GroupedKernel, flat_kernel, grouped_dispatches, site_variables
from .registry import BuildContext, Dispatch

# Register tile: PX adjacent output pixels x OCB blocks of 4 output channels per invocation.
# Every input vec4 load feeds OCB mat4 FMAs per pixel: loads (gathers on lavapipe, memory
# traffic on a real GPU) are what limit a conv, not the FMAs.
# Chosen by measuring ESPCN at 640x360 on lavapipe (process CPU time, which other load on the
# machine does not skew): 8x2 beat 4x4, 4x2, 2x4 and 8x4 (spills) by 10-40%.
PX = 8
OCB = 2
WG = (8, 8)  # workgroup shape (columns of PX pixels, rows)


def pack_conv2d_weights(w: np.ndarray, ocb: int, bstride: int) -> np.ndarray:
    """OIHW -> [group of OCB output blocks][ocb][ky][kx][ic4] mat4x4 blocks, column j = input
    lane j, row i = output lane i.

    Each output block is padded to `bstride` matrices so a group's window starts on a
    256-byte boundary (uniform-buffer binding offsets must).
    """
    oc, ic, kh, kw = w.shape
    oc4, ic4 = pad4(oc) // 4, pad4(ic) // 4
    ng = math.ceil(oc4 / ocb)
    wp = np.zeros((ng * ocb * 4, ic4 * 4, kh, kw), np.float32)
    wp[:oc, :ic] = w
    # [g, o, i, ic4, j, ky, kx] -> [g, o, ky, kx, ic4, j, i]
    blocks = wp.reshape(ng, ocb, 4, ic4, 4, kh, kw).transpose(0, 1, 5, 6, 3, 4, 2)
    blocks = blocks.reshape(ng, ocb, kh * kw * ic4, 16)
    out = np.zeros((ng, ocb, bstride, 16), np.float32)
    out[:, :, : kh * kw * ic4] = blocks
    return out


def pack_conv2d_weights_by_row(w: np.ndarray, ocb: int, row_mats: int) -> np.ndarray:
    """OIHW -> [group of OCB output blocks][ic4][ky][kx][ocb] mat4x4 blocks, each kernel row
    padded to `row_mats` matrices (an even count) and each group to a multiple of 4: one
    row's matrices lie together, so the lanes of a subgroup load them two at a time (`sg`)."""
    oc, ic, kh, kw = w.shape
    oc4, ic4 = pad4(oc) // 4, pad4(ic) // 4
    ng = math.ceil(oc4 / ocb)
    blocks = pack_conv2d_weights(w, ocb, kh * kw * ic4)  # [g][o][ky][kx][ic4][16]
    blocks = blocks.reshape(ng, ocb, kh, kw, ic4, 16).transpose(0, 4, 2, 3, 1, 5)
    rows = np.zeros((ng, ic4, kh, row_mats, 16), np.float32)
    rows[:, :, :, : kw * ocb] = blocks.reshape(ng, ic4, kh, kw * ocb, 16)
    out = np.zeros((ng, (ic4 * kh * row_mats + 3) // 4 * 4, 16), np.float32)
    out[:, : ic4 * kh * row_mats] = rows.reshape(ng, -1, 16)
    return out


def channel_blocks_per_invocation(oc4: int, ocb: int = OCB) -> int:
    """OCB for a conv with `oc4` output blocks: `ocb`, or all of them when there are at most 3.

    A last group only partly filled computes its empty blocks anyway: for the 12-channel
    output of a x2 upscaler (3 blocks) one group of 3 ran 1.4x faster than groups of 2.
    """
    return oc4 if oc4 <= 3 else min(ocb, oc4)


def build_direct(
    site: ConvSite,
    ctx: BuildContext,
    px: int = PX,
    ocb: int = OCB,
    variant: str = "direct",
    sg: bool = False,
) -> list[Dispatch]:
    """PX adjacent pixels x OCB output blocks per invocation, one dispatch per group of OCB
    output blocks (and per row band of a frame larger than one storage binding). `sg`: the
    weights are loaded once per subgroup and broadcast (subgroups of 8 lanes or more)."""
    node, ic4, oc4 = site.node, site.ic4, site.oc4
    bstride = (site.kh * site.kw * ic4 + 3) // 4 * 4
    block_bytes = bstride * 64
    ocb = channel_blocks_per_invocation(oc4, ocb)
    row_mats = (site.kw * ocb + 1) // 2 * 2
    if sg:
        packed = pack_conv2d_weights_by_row(site.w, ocb, row_mats)
        window = packed.shape[1] * 64
        weights_uniform = window <= ctx.limits["max-uniform-buffer-binding-size"]
    else:
        weights_uniform = block_bytes * ocb <= ctx.limits["max-uniform-buffer-binding-size"]
        if not weights_uniform:
            ocb = 1  # a storage buffer window of one block
        packed = pack_conv2d_weights(site.w, ocb, bstride)
        window = ocb * block_bytes
    wkey = ctx.add_const(f"{node.name}/w4{'sg' if sg else ''}", packed)
    bkey = ctx.add_const(f"{node.name}/b4", np.pad(site.bias, (0, oc4 * 4 - site.oc)))
    variables = site_variables(site) | {
        "px": px,
        "wgx": WG[0],
        "wgy": WG[1],
        "ocb": ocb,
        "bstride": bstride,
        "wn": window // 64,
        "weights_uniform": weights_uniform,
        "in_lanes": site.ic if ic4 == 1 else 4,
        "sg": sg,
        "row_mats": row_mats,
    }
    weights = (wkey, bkey, ocb, window, weights_uniform)
    if sg:
        kernel = flat_kernel("conv2d.wgsl", variables, math.ceil(site.ow / px), weights)
    else:
        gx = math.ceil(site.ow / (px * WG[0]))
        kernel = GroupedKernel("conv2d.wgsl", variables, *weights, gx, WG)
    return grouped_dispatches(site, ctx, kernel, variant)

"""The shared-memory implicit-GEMM conv (shaders/ops/conv_tiled.wgsl) for real GPUs.

onnxruntime's WebGPU EP moved its NCHW convs onto this design (conv2d_mm, from TF.js) and got
4x: 32 x 32 output tiles, 4 x 4 outputs per invocation, A and B staged in workgroup memory so
each input and weight is read from global memory once per workgroup instead of once per
invocation. On lavapipe workgroup memory is an emulated per-lane array and barriers switch
coroutines, so there it only has to be correct; measurement (infer.kernel_choice) decides.
"""

from __future__ import annotations

import math

import numpy as np

from ..layout import pad4
from .conv_site import ConvSite, site_variables, slope_binding
from .registry import Binding, BuildContext, Dispatch

TILE_PIXELS = 32
K_STEP = 8  # blocks of 4 input channels per shared-memory step
N_BLOCKS = 8  # output blocks (of 4 channels) per workgroup
MAX_GROUPS = 65535


def tiled_applies(site: ConvSite, ctx: BuildContext) -> str | None:
    """None when the tiled kernel can run this conv, else why not: it addresses input and
    output as one binding each (no row bands) and needs 8 KiB of workgroup memory."""
    limit = ctx.limits["max-storage-buffer-binding-size"]
    esize = ctx.esize
    if site.n * site.ih * site.iw * site.ic4 * 4 * esize > limit:
        return "input larger than one storage binding"
    if site.n * site.oh * site.ow * site.oc4 * 4 * esize > limit:
        return "output larger than one storage binding"
    if ctx.limits.get("max-compute-workgroup-storage-size", 16384) < 8192:
        return "less than 8 KiB of workgroup memory"
    return None


def pack_tiled_weights(w: np.ndarray) -> np.ndarray:
    """OIHW -> [k block = (ky, kx, ic4), padded to K_STEP][oc4, padded to N_BLOCKS] mat4x4
    (column j = input lane j, row i = output lane i): one row of B per k block."""
    oc, ic, kh, kw = w.shape
    oc4, ic4 = pad4(oc) // 4, pad4(ic) // 4
    kblocks = kh * kw * ic4
    k8 = math.ceil(kblocks / K_STEP) * K_STEP
    n8 = math.ceil(oc4 / N_BLOCKS) * N_BLOCKS
    wp = np.zeros((oc4 * 4, ic4 * 4, kh, kw), np.float32)
    wp[:oc, :ic] = w
    # [oc4, i, ic4, j, ky, kx] -> [ky, kx, ic4, oc4, j, i]
    blocks = wp.reshape(oc4, 4, ic4, 4, kh, kw).transpose(4, 5, 2, 0, 3, 1)
    out = np.zeros((k8, n8, 16), np.float32)
    out[:kblocks, :oc4] = blocks.reshape(kblocks, oc4, 16)
    return out


def build_tiled(site: ConvSite, ctx: BuildContext, variant: str = "tiled") -> list[Dispatch]:
    node = site.node
    oc4, oc = site.oc4, site.oc
    kblocks = site.kh * site.kw * site.ic4
    npix = site.n * site.oh * site.ow
    tiles = math.ceil(npix / TILE_PIXELS)
    gx = min(tiles, MAX_GROUPS)
    wkey = ctx.add_const(f"{node.name}/wtiled", pack_tiled_weights(site.w))
    bkey = ctx.add_const(f"{node.name}/b4", np.pad(site.bias, (0, oc4 * 4 - oc)))
    variables = site_variables(site) | {
        "oc8": math.ceil(oc4 / N_BLOCKS) * N_BLOCKS,
        "npix": npix,
        "kblocks": kblocks,
        "ktiles": math.ceil(kblocks / K_STEP),
        "gx": gx,
    }
    bindings = [
        Binding("in", site.x),
        Binding("const", wkey),
        Binding("const", bkey, uniform=True),
        Binding("out", site.y),
        *slope_binding(node, ctx, oc),
    ]
    grid = (gx, math.ceil(tiles / gx), math.ceil(oc4 / N_BLOCKS))
    return [Dispatch("conv_tiled.wgsl", variables, bindings, grid, node.name, site.flops, variant)]

"""Winograd F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5) for stride-1, one-group convs.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016): an m x m output
tile of an r x r kernel is A^T [(G g G^T) * (B^T d B)] A, with (m+r-1)^2 multiplies per
input/output channel pair instead of r^2 m^2: 2.25x fewer for F(2,3), 4x for F(4,3), 2.8x for
F(2,5). The weights are transformed once at load (in exact fractions, then f32); the input
and output transforms run inside the kernel (shaders/ops/conv_winograd.wgsl), so no
transformed tensor goes through memory.

What it buys depends on the device, which is why infer.kernel_choice measures: on lavapipe a
kernel's time goes to per-lane memory access (a storage load or a uniform load indexed by a
loop counter is a loop over the 8 lanes) more than to FMAs, so the wide variant (4 tiles per
invocation, each weight load feeding 4 tiles) is what wins there: 1.2-1.3x over the direct
kernel on 64->32 and 32->12 3x3 layers, and 1.7x as F(2,5) on an RGB 5x5 first layer, whose
single input block leaves no loop, so its weights are broadcast, not gathered (alternated in
one process, process CPU time, 320x180). The `sg` kernels go further where a device has
subgroups: the lanes of a subgroup load one input block's weight matrices together, a column
each, and subgroupBroadcast hands every column to every lane, so a weight costs one eighth of
a per-lane load and a register shuffle: 1.5-1.9x over the wide kernel on lavapipe. On a GPU,
the same broadcast replaces a uniform-cache read with a shuffle.

Accuracy (max error relative to the output's scale, fp32, against onnxruntime; measured in
tests/infer/test_conv_variants.py): F(2,3) 3e-7, no worse than the direct kernel; F(4,3) and
F(2,5), whose transforms hold 4, 5, 8 and 1/24, 2-4e-6, under the deploy gate's 1e-4.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np

from ..layout import pad4
from .conv_site import ConvSite, GroupedKernel, flat_kernel, grouped_dispatches, site_variables
from .registry import BuildContext, Dispatch

# interpolation points, in the order Lavin & Gray use them; infinity is added last
POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))
TILES = {3: (2, 4), 5: (2,)}  # output tiles m offered per kernel size r
WG = (8, 8)  # workgroup: columns of TX tiles, tile rows

Matrix = list[list[Fraction]]


@lru_cache(maxsize=8)
def winograd_matrices(m: int, r: int) -> tuple[Matrix, Matrix, Matrix]:
    """(B^T, G, A^T) of F(m, r) by Toom-Cook on the first m+r-2 POINTS and infinity.

    With M_j(x) = prod_{l != j} (x - p_l): row j of B^T holds M_j's coefficients (the last
    row: those of prod_l (x - p_l)), row j of G is (1, p_j, .., p_j^(r-1)) / M_j(p_j), column
    j of A^T is (1, p_j, .., p_j^(m-1)); infinity's row/column picks the top coefficient.
    For F(4,3) this gives Lavin & Gray's matrices exactly.
    """
    a = m + r - 1
    pts = [Fraction(p) for p in POINTS[: a - 1]]

    def poly(roots: list[Fraction]) -> list[Fraction]:  # ascending coefficients
        c = [Fraction(1)]
        for root in roots:
            c = [Fraction(0), *c]
            for i in range(len(c) - 1):
                c[i] -= root * c[i + 1]
        return c

    bt = [[*poly(pts[:j] + pts[j + 1 :]), Fraction(0)] for j in range(a - 1)]
    bt.append(poly(pts))
    g = []
    for j, p in enumerate(pts):
        norm = math.prod((p - q for k, q in enumerate(pts) if k != j), start=Fraction(1))
        g.append([p**k / norm for k in range(r)])
    g.append([Fraction(0)] * (r - 1) + [Fraction(1)])
    at = [[p**i for p in pts] + [Fraction(1 if i == m - 1 else 0)] for i in range(m)]
    return bt, g, at


def winograd_applies(site: ConvSite, m: int) -> str | None:
    """None when F(m, k) can compute this conv, else the reason it cannot."""
    if site.kh != site.kw or m not in TILES.get(site.kh, ()):
        return f"no F({m},{site.kh}) for a {site.kh}x{site.kw} kernel"
    if (site.sh, site.sw) != (1, 1) or (site.dh, site.dw) != (1, 1):
        return "strided or dilated"
    return None


def transform_weights(w: np.ndarray, m: int) -> np.ndarray:
    """OIHW r x r weights -> U = G g G^T, shape (oc, ic, m+r-1, m+r-1), in float64 then f32."""
    _, g, _ = winograd_matrices(m, w.shape[-1])
    gm = np.array([[float(c) for c in row] for row in g])
    return np.einsum("ak,oikl,bl->oiab", gm, w.astype(np.float64), gm).astype(np.float32)


def pack_winograd_weights(u: np.ndarray, ocb: int, bstride: int) -> np.ndarray:
    """(oc, ic, a, a) -> [group of OCB output blocks][ocb][a*a position][ic4] mat4x4 blocks
    (column j = input lane j, row i = output lane i), each output block padded to `bstride`
    matrices so a group's window starts on 256 bytes (uniform binding offsets must)."""
    oc, ic, a, _ = u.shape
    oc4, ic4 = pad4(oc) // 4, pad4(ic) // 4
    ng = math.ceil(oc4 / ocb)
    up = np.zeros((ng * ocb * 4, ic4 * 4, a * a), np.float32)
    up[:oc, :ic] = u.reshape(oc, ic, a * a)
    # [g, o, i, ic4, j, pos] -> [g, o, pos, ic4, j, i]
    blocks = up.reshape(ng, ocb, 4, ic4, 4, a * a).transpose(0, 1, 5, 3, 4, 2)
    blocks = blocks.reshape(ng, ocb, a * a * ic4, 16)
    out = np.zeros((ng, ocb, bstride, 16), np.float32)
    out[:, :, : a * a * ic4] = blocks
    return out


def pack_winograd_weights_by_block(u: np.ndarray, ocb: int, gstride: int) -> np.ndarray:
    """(oc, ic, a, a) -> [group of OCB output blocks][ic4][ocb][a*a position] mat4x4 blocks,
    each group padded to `gstride` matrices: one input block's matrices lie together, so the
    lanes of a subgroup load them with consecutive indices (the `sg` kernels)."""
    a, ic4 = u.shape[2], pad4(u.shape[1]) // 4
    blocks = pack_winograd_weights(u, ocb, a * a * ic4)  # [g][o][pos][ic4][16]
    ng = blocks.shape[0]
    blocks = blocks.reshape(ng, ocb, a * a, ic4, 16).transpose(0, 3, 1, 2, 4)
    out = np.zeros((ng, gstride, 16), np.float32)
    out[:, : ic4 * ocb * a * a] = blocks.reshape(ng, -1, 16)
    return out


def build_winograd(
    site: ConvSite,
    ctx: BuildContext,
    m: int,
    ocb: int,
    tx: int = 1,
    variant: str = "",
    sg: bool = False,
) -> list[Dispatch]:
    """Dispatches of F(m x m, r x r) with OCB output blocks and TX tiles per invocation, one
    per group of OCB output blocks (and per band of tile rows of a large frame). `sg`: the
    weights are loaded once per subgroup and broadcast (needs subgroups of 8 lanes or more)."""
    node, r = site.node, site.kh
    a = m + r - 1
    ic4, oc4 = site.ic4, site.oc4
    ocb = min(ocb, oc4)
    u = transform_weights(site.w, m)
    if sg:
        bstride = (a * a * ic4 * ocb + 3) // 4 * 4  # matrices of one group
        window = bstride * 64
        packed = pack_winograd_weights_by_block(u, ocb, bstride)
    else:
        bstride = (a * a * ic4 + 3) // 4 * 4  # matrices of one output block
        window = ocb * bstride * 64
        packed = pack_winograd_weights(u, ocb, bstride)
    weights_uniform = window <= ctx.limits["max-uniform-buffer-binding-size"]
    wkey = ctx.add_const(f"{node.name}/wino{m}{'sg' if sg else ''}", packed)
    bkey = ctx.add_const(f"{node.name}/b4", np.pad(site.bias, (0, oc4 * 4 - site.oc)))
    bt, _, at = winograd_matrices(m, r)
    tiles_x, tiles_y = math.ceil(site.ow / m), math.ceil(site.oh / m)
    variables = site_variables(site) | {
        "m": m,
        "ksize": r,
        "bt": [[float(c) for c in row] for row in bt],
        "at": [[float(c) for c in row] for row in at],
        "tx": tx,
        "tiles_x": tiles_x,
        "tiles_y": tiles_y,
        "wgx": WG[0],
        "wgy": WG[1],
        "ocb": ocb,
        "bstride": bstride,
        "wn": window // 64,
        "weights_uniform": weights_uniform,
        "in_lanes": site.ic if ic4 == 1 else 4,
        "sg": sg,
    }
    weights = (wkey, bkey, ocb, window, weights_uniform)
    if sg:
        cols = math.ceil(tiles_x / tx)
        kernel = flat_kernel("conv_winograd.wgsl", variables, cols, weights, m)
    else:
        gx = math.ceil(tiles_x / (tx * WG[0]))
        kernel = GroupedKernel("conv_winograd.wgsl", variables, *weights, gx, WG, m)
    return grouped_dispatches(site, ctx, kernel, variant or f"winograd{m}")

"""Winograd F(2x2, 3x3) and F(4x4, 3x3) for stride-1, dilation-1, one-group 3x3 convs.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016): an m x m output
tile is A^T [(G g G^T) * (B^T d B)] A, with (m+2)^2 multiplies per input/output channel pair
instead of 9 m^2: 2.25x fewer for F(2,3), 4x fewer for F(4,3). On lavapipe, where the
direct kernel already runs near llvmpipe's FMA ceiling, doing fewer FMAs is the only way to
go faster. The weights are transformed once at load (in float64, then stored as f32); the
input and output transforms run inside the kernel (shaders/ops/conv_winograd.wgsl), so no
transformed tensor ever goes through memory.

Accuracy: F(2,3)'s transforms have coefficients 0, +-1 and 1/2 and lose nothing measurable;
F(4,3)'s (up to 8 and 1/24) amplify rounding: its error is measured and stated in
tests/infer/test_conv_variants.py and docs/notes-issue17.md.
"""

from __future__ import annotations

import math

import numpy as np

from ..layout import pad4
from .conv_site import ConvSite, row_bands, slope_binding
from .registry import Binding, BuildContext, Dispatch

# (B^T, G, A^T) for output tile m, from Lavin & Gray (interpolation points 0, +-1, +-2, inf).
TRANSFORMS: dict[int, tuple[list[list[float]], list[list[float]], list[list[float]]]] = {
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    4: (
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}
WG = (8, 8)  # workgroup: columns of TX tiles, tile rows


def winograd_applies(site: ConvSite) -> str | None:
    """None when a Winograd kernel can compute this conv, else the reason it cannot."""
    if (site.kh, site.kw) != (3, 3):
        return f"kernel {site.kh}x{site.kw}, not 3x3"
    if (site.sh, site.sw) != (1, 1) or (site.dh, site.dw) != (1, 1):
        return "strided or dilated"
    return None


def transform_weights(w: np.ndarray, m: int) -> np.ndarray:
    """OIHW 3x3 weights -> U = G g G^T, shape (oc, ic, m+2, m+2), computed in float64."""
    g = np.asarray(TRANSFORMS[m][1], np.float64)
    return np.einsum("ak,oikl,bl->oiab", g, w.astype(np.float64), g).astype(np.float32)


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


def weight_window(site: ConvSite, m: int, ocb: int) -> int:
    """Bytes of the transformed weights one dispatch binds (OCB output blocks)."""
    return ocb * (((m + 2) ** 2 * site.ic4 + 3) // 4 * 4) * 64


def build_winograd(
    site: ConvSite, ctx: BuildContext, m: int, ocb: int, tx: int = 1, variant: str = ""
) -> list[Dispatch]:
    """Dispatches of F(m x m, 3 x 3) with OCB output blocks and TX tiles per invocation, one
    per group of OCB output blocks (and per band of tile rows of a large frame)."""
    node, x, y = site.node, site.x, site.y
    a = m + 2
    ic4, oc4, oc = site.ic4, site.oc4, site.oc
    ocb = min(ocb, oc4)
    bstride = (a * a * ic4 + 3) // 4 * 4
    window = ocb * bstride * 64
    weights_uniform = window <= ctx.limits["max-uniform-buffer-binding-size"]
    u = transform_weights(site.w, m)
    wkey = ctx.add_const(f"{node.name}/wino{m}", pack_winograd_weights(u, ocb, bstride))
    bkey = ctx.add_const(f"{node.name}/b4", np.pad(site.bias, (0, oc4 * 4 - oc)))
    bt, _, at = TRANSFORMS[m]
    tiles_x, tiles_y = math.ceil(site.ow / m), math.ceil(site.oh / m)
    variables = {
        "m": m,
        "bt": [[float(c) for c in row] for row in bt],
        "at": [[float(c) for c in row] for row in at],
        "tx": tx,
        "ih": site.ih,
        "iw": site.iw,
        "ic4": ic4,
        "oh": site.oh,
        "ow": site.ow,
        "oc4": oc4,
        "oc": oc,
        "pt": site.pads[0],
        "pl": site.pads[1],
        "tiles_x": tiles_x,
        "tiles_y": tiles_y,
        "wgx": WG[0],
        "wgy": WG[1],
        "ocb": ocb,
        "bstride": bstride,
        "wn": ocb * bstride,
        "weights_uniform": weights_uniform,
        "mask_lanes": oc % 4 != 0,
        "in_lanes": site.ic if ic4 == 1 else 4,
        "act": site.act,
    }
    slope = slope_binding(node, ctx, oc)
    bands = row_bands(ctx, site, tile=m, step=m * WG[1])
    gx = math.ceil(tiles_x / (tx * WG[0]))
    dispatches = []
    for g, c0 in enumerate(range(0, oc4, ocb)):
        cn = min(ocb, oc4 - c0)
        wbind = Binding("const", wkey, g * window, window, weights_uniform)
        for r0, r1, in_off, in_size, out_off, out_size in bands:
            vec = 4 * ctx.esize  # bytes of one stored vec4
            params = np.array([c0, r0 // m, in_off // vec, out_off // vec], np.uint32)
            pkey = ctx.add_const(f"{node.name}/params/{c0}/{r0}", params)
            bindings = [
                Binding("in", x, in_off, in_size),
                wbind,
                Binding("const", bkey, uniform=True),
                Binding("const", pkey, uniform=True),
                Binding("out", y, out_off, out_size),
                *slope,
            ]
            grid = (gx, math.ceil(math.ceil((r1 - r0) / m) / WG[1]), site.n)
            label = node.name if len(bands) == 1 and c0 == 0 else f"{node.name}[{c0}:{r0}]"
            share = cn * (r1 - r0) / (oc4 * site.oh)
            dispatches.append(
                Dispatch(
                    "conv_winograd.wgsl",
                    variables,
                    bindings,
                    grid,
                    label,
                    site.flops * share,
                    variant or f"winograd{m}",
                )
            )
    return dispatches

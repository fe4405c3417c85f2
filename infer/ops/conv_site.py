"""A 2-D Conv node at concrete shapes: what every conv kernel variant reads, worked out once.

The kernel variants (conv_direct, conv_winograd, conv_tiled) take a ConvSite and return
dispatches; conv.py chooses between them. Geometry (pads, auto_pad, output size), the bias,
the fused activation and its PReLU slope binding, and the row bands a frame larger than one
storage binding is split into all live here so the variants agree on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..graph import Node
from ..layout import pad4
from .registry import Binding, BuildContext, Dispatch, NotSupported, Value, attr_ints
from .unary import NO_ACTIVATION

TRIAL_PIXELS = 65536  # output pixels a candidate is timed on (see trial_site)
# output rows [r0, r1), input (offset, size) and output (offset, size) in bytes (None: all)
Band = tuple[int, int, int, int | None, int, int | None]


def conv_geometry(node: Node, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> dict:
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


def conv_bias(node: Node, ctx: BuildContext, oc: int) -> np.ndarray:
    b = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    return np.zeros(oc, np.float32) if b is None else np.asarray(b, np.float32).reshape(oc)


def slope_binding(node: Node, ctx: BuildContext, oc: int) -> list[Binding]:
    """The PReLU slope, padded to whole vec4 blocks, when a PReLU is fused into the store."""
    act = node.attrs.get("_activation", NO_ACTIVATION)
    if act["kind"] != "PRelu":
        return []
    slope = np.zeros(pad4(oc), np.float32)
    slope[:oc] = np.broadcast_to(np.asarray(act["slope"], np.float32).reshape(-1), (oc,))
    return [Binding("const", ctx.add_const(f"{node.name}/slope", slope), uniform=True)]


@dataclass
class ConvSite:
    """One 2-D, one-group Conv at concrete shapes (NCHW logical; tensors stored pack-4)."""

    node: Node
    x: str
    y: str
    w: np.ndarray  # OIHW float32
    bias: np.ndarray  # (oc,) float32
    n: int
    ic: int
    ih: int
    iw: int
    oc: int
    oh: int
    ow: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    precision: str

    @property
    def ic4(self) -> int:
        return pad4(self.ic) // 4

    @property
    def oc4(self) -> int:
        return pad4(self.oc) // 4

    @property
    def act(self) -> dict[str, Any]:
        return dict(self.node.attrs.get("_activation", NO_ACTIVATION))

    @property
    def flops(self) -> float:
        """Multiply-adds x 2 of the convolution itself, whatever algorithm computes it."""
        return 2.0 * self.n * self.oc * self.oh * self.ow * self.ic * self.kh * self.kw

    @property
    def geo(self) -> dict[str, Any]:
        return {
            "k": [self.kh, self.kw],
            "s": [self.sh, self.sw],
            "d": [self.dh, self.dw],
            "pads": list(self.pads),
        }

    def key(self) -> str:
        """What a measured kernel choice depends on: every attribute, the channel counts, and
        the output size class: up to a power of 4 in pixels, and every map over TRIAL_PIXELS
        alike (candidates are timed on a TRIAL_PIXELS crop of those). A stream whose
        resolution adapts every few seconds must not re-measure at each new size. Not the
        weights or the activation (the same store epilogue follows every variant)."""
        t, left, b, r = self.pads
        px = self.oh * self.ow
        bound = 4 ** math.ceil(math.log(max(2, px), 4))
        size = f"<={bound}" if px <= TRIAL_PIXELS else f">{TRIAL_PIXELS}"
        return (
            f"conv n{self.n} {self.ic}->{self.oc} k{self.kh}x{self.kw} s{self.sh}x{self.sw} "
            f"d{self.dh}x{self.dw} p{t},{left},{b},{r} out{size}px "
            f"{self.precision}"
        )


def trial_site(site: ConvSite) -> tuple[ConvSite, dict[str, Value]]:
    """The conv cut to about TRIAL_PIXELS output pixels (whole rows, full width), on tensors
    of its own, for timing candidates: the time per pixel of a large map is what a crop of
    it shows, and timing a 1080p, 64-channel layer five times over would cost seconds on a
    GPU and minutes on lavapipe. Returns the site and the shapes of its two tensors."""
    if site.oh * site.ow <= TRIAL_PIXELS:
        return site, {}
    rows = max(1, TRIAL_PIXELS // site.ow)
    span = (site.kh - 1) * site.dh + 1
    ih = max(1, min(site.ih, (rows - 1) * site.sh + span - site.pads[0]))
    oh = max(1, (ih + site.pads[0] + site.pads[2] - span) // site.sh + 1)
    x, y = f"{site.x}#trial", f"{site.y}#trial"
    values = {
        x: Value((site.n, site.ic, ih, site.iw)),
        y: Value((site.n, site.oc, oh, site.ow)),
    }
    return replace(site, x=x, y=y, ih=ih, oh=oh), values


def conv_site(node: Node, ctx: BuildContext, w: np.ndarray, geo: dict[str, Any]) -> ConvSite:
    x, y = node.inputs[0], node.outputs[0]
    x_shape, y_shape = ctx.shape(x), ctx.shape(y)
    pads = geo["pads"]
    return ConvSite(
        node=node,
        x=x,
        y=y,
        w=np.asarray(w, np.float32),
        bias=conv_bias(node, ctx, w.shape[0]),
        n=x_shape[0],
        ic=x_shape[1],
        ih=geo["ins"][0],
        iw=geo["ins"][1],
        oc=w.shape[0],
        oh=y_shape[2],
        ow=y_shape[3],
        kh=geo["k"][0],
        kw=geo["k"][1],
        sh=geo["s"][0],
        sw=geo["s"][1],
        dh=geo["d"][0],
        dw=geo["d"][1],
        pads=(pads[0], pads[1], pads[2], pads[3]),
        precision=ctx.precision,
    )


def row_bands(ctx: BuildContext, site: ConvSite, tile: int = 1, step: int = 1) -> list[Band]:
    """Split output rows into bands whose input and output ranges fit one storage binding.

    Channels-last makes a band of rows one contiguous range, so a 1080p, 64-channel map that
    is larger than the device's binding limit is processed band by band instead of failing.
    A band holds a multiple of `step` output rows (a kernel's workgroup height in rows), so no
    invocation of one band computes rows of the next, and its input range covers every row a
    `tile` of output rows (a Winograd tile's height) reads.
    """
    limit = ctx.limits["max-storage-buffer-binding-size"]
    n, ih, oh = site.n, site.ih, site.oh
    in_row = site.iw * site.ic4 * 4 * ctx.esize
    out_row = site.ow * site.oc4 * 4 * ctx.esize
    if n * ih * in_row <= limit and n * oh * out_row <= limit:
        return [(0, oh, 0, None, 0, None)]
    if n != 1:
        raise NotSupported("tensor exceeds the storage binding limit with batch > 1")
    sh, pt = site.sh, site.pads[0]
    span = (site.kh - 1) * site.dh + 1

    def rows_read(r0: int, r1: int) -> tuple[int, int]:
        r1 = min(math.ceil(r1 / tile) * tile, math.ceil(oh / tile) * tile)
        lo = min(max(0, r0 * sh - pt), ih - 1)
        return lo, min(ih, max(lo + 1, (r1 - 1) * sh - pt + span))

    rows = math.ceil(oh / step) * step
    while rows > step:
        lo, hi = rows_read(0, rows)
        if (hi - lo) * in_row + 256 <= limit and rows * out_row + 256 <= limit:
            break
        rows = max(step, rows // 2 // step * step)
    bands: list[Band] = []
    for r0 in range(0, oh, rows):
        r1 = min(oh, r0 + rows)
        lo, hi = rows_read(r0, r1)
        in_off = lo * in_row // 256 * 256
        out_off = r0 * out_row // 256 * 256
        bands.append((r0, r1, in_off, hi * in_row - in_off, out_off, r1 * out_row - out_off))
    return bands


def site_variables(site: ConvSite) -> dict[str, Any]:
    """The geometry every conv kernel's template reads; a variant adds its own tiling."""
    return {
        "ih": site.ih,
        "iw": site.iw,
        "ic4": site.ic4,
        "oh": site.oh,
        "ow": site.ow,
        "oc4": site.oc4,
        "oc": site.oc,
        "kh": site.kh,
        "kw": site.kw,
        "sh": site.sh,
        "sw": site.sw,
        "dh": site.dh,
        "dw": site.dw,
        "pt": site.pads[0],
        "pl": site.pads[1],
        "mask_lanes": site.oc % 4 != 0,
        "act": site.act,
    }


@dataclass(frozen=True)
class GroupedKernel:
    """A conv kernel that runs one dispatch per group of `ocb` output blocks (each binding its
    window of `window` weight bytes) and per row band; `tile` output rows per grid row step
    (a Winograd tile's height, else 1), `wg` the workgroup shape, `gx` the grid's width."""

    shader: str
    variables: dict[str, Any]
    wkey: str
    bkey: str
    ocb: int
    window: int
    weights_uniform: bool
    gx: int
    wg: tuple[int, int]
    tile: int = 1
    flat: bool = False  # a 1-D grid: gx invocations per tile row, the band's rows in order


SG_WG = 64  # workgroup of the subgroup kernels: one dimension (naga defines lanes only so)


def flat_kernel(
    shader: str,
    variables: dict[str, Any],
    cols: int,
    weights: tuple[str, str, int, int, bool],
    tile: int = 1,
) -> GroupedKernel:
    """A GroupedKernel on a flat grid of 1-D workgroups: `cols` invocations a row of this
    band (of `tile` output rows), the rows one after another (the `sg` kernels, whose
    subgroup lanes need a 1-D workgroup). `weights` = (wkey, bkey, ocb, window, uniform)."""
    wkey, bkey, ocb, window, uniform = weights
    variables = variables | {"cols": cols, "wgx": SG_WG}
    return GroupedKernel(
        shader, variables, wkey, bkey, ocb, window, uniform, cols, (SG_WG, 1), tile, flat=True
    )


def grouped_dispatches(
    site: ConvSite, ctx: BuildContext, k: GroupedKernel, variant: str
) -> list[Dispatch]:
    """The dispatches of `k`: params = (first channel block, first output row / tile, input
    and output base of the band, then the sizes: ih, iw, oh, ow, tiles_y, tiles_x, cols,
    the band's tile rows) per group and band."""
    node, oc4 = site.node, site.oc4
    slope = slope_binding(node, ctx, site.oc)
    bands = row_bands(ctx, site, tile=k.tile, step=k.tile * k.wg[1])
    variables = k.variables
    vec = 4 * ctx.esize  # bytes of one stored vec4
    # the frame's sizes travel in params, not in the kernel's code (conv_grouped_io.wgsl), so
    # one compiled kernel serves every input size
    sizes = [site.ih, site.iw, site.oh, site.ow]
    sizes += [variables.get("tiles_y", 0), variables.get("tiles_x", 0), k.gx if k.flat else 0]
    dispatches = []
    for g, c0 in enumerate(range(0, oc4, k.ocb)):
        cn = min(k.ocb, oc4 - c0)
        wbind = Binding("const", k.wkey, g * k.window, k.window, k.weights_uniform)
        for r0, r1, in_off, in_size, out_off, out_size in bands:
            rows = math.ceil((r1 - r0) / k.tile)  # an invocation past them stores nothing
            base = [c0, r0 // k.tile, in_off // vec, out_off // vec]
            params = np.array([*base, *sizes, rows], np.uint32)
            pkey = ctx.add_const(f"{node.name}/params/{c0}/{r0}", params)
            bindings = [
                Binding("in", site.x, in_off, in_size),
                wbind,
                Binding("const", k.bkey, uniform=True),
                Binding("const", pkey, uniform=True),
                Binding("out", site.y, out_off, out_size),
                *slope,
            ]
            if k.flat:
                grid = (math.ceil(k.gx * rows / k.wg[0]), 1, site.n)
            else:
                grid = (k.gx, math.ceil(rows / k.wg[1]), site.n)
            label = node.name if len(bands) == 1 and c0 == 0 else f"{node.name}[{c0}:{r0}]"
            share = cn * (r1 - r0) / (oc4 * site.oh)
            flops = site.flops * share
            dispatches.append(Dispatch(k.shader, variables, bindings, grid, label, flops, variant))
    return dispatches

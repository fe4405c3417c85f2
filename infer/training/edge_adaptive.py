"""The edge-adaptive classic upscaler, in numpy: the reference for the pipeline's `edge` mode.

The algorithm is AMD FidelityFX Super Resolution 1.0 (FSR 1, T. Lottes, AMD GPUOpen 2021,
MIT licence; described in "FidelityFX Super Resolution 1.0", GPUOpen documentation, and in
the comments of its reference header ffx_fsr1.h), the spatial upscaler games ship:

1. EASU (edge-adaptive spatial upsampling). For each output pixel, the 12 input texels
   around it (a 4x4 square without its corners) are read. Their luma (approximated as
   R/2 + G + B/2) gives, at each of the four nearest texels, a '+'-shaped gradient; the four
   are blended bilinearly into an edge direction and an "edgeness" (how far a gradient runs
   one way rather than reversing). A Lanczos-2-like kernel, approximated by the polynomial
   (25/16 (2/5 x^2 - 1)^2 - 9/16) (w x^2 - 1)^2 clipped at 1/w, is rotated along the edge,
   stretched along it and squeezed across it as edgeness grows, and its window widened from
   sqrt(2) to about 2. The 12 weighted texels are normalised and clamped to the min/max of
   the 4 nearest texels (no ringing).
2. RCAS (robust contrast-adaptive sharpening) on the upscaled image: a '+' (5-tap) filter
   whose negative lobe is, per pixel, the largest that neither clips the centre below 0 nor
   above 1 given its 4 neighbours (computed per channel, the weakest wins), capped at
   -(1/4 - 1/16) and scaled by 2^-sharpness (sharpness in stops: 0 is the strongest).

Differences from the shipped HLSL/GLSL, all of them exact-arithmetic choices: exact
reciprocals and square roots instead of FSR's bit-trick approximations (APrxLoRcpF1 and
friends; WGSL has exact ones at no cost on our targets), zero-divides guarded as FSR's later
revision does, RCAS's input saturated to [0, 1] (its limits assume that range, and the
pipeline's float RGB can leave it slightly), and no RCAS denoise option.

shaders/colour/edge_easu.wgsl and edge_rcas.wgsl are the same algorithm, operation for
operation, so tests/stream/test_edge_mode.py can hold the GPU's output to this one
(float32 throughout here, for the same reason).
"""

from __future__ import annotations

import numpy as np

SHARPNESS = 0.2  # RCAS strength in stops (0 = strongest): FSR's samples default to 0.2
RCAS_LIMIT = 0.25 - 1.0 / 16.0  # the most negative lobe RCAS allows (FSR_RCAS_LIMIT)
_F = np.float32

# EASU's 12 taps as (dx, dy) from the nearest top-left texel f:
#     b c
#   e f g h
#   i j k l
#     n o
TAPS = {
    "b": (0, -1), "c": (1, -1),
    "e": (-1, 0), "f": (0, 0), "g": (1, 0), "h": (2, 0),
    "i": (-1, 1), "j": (0, 1), "k": (1, 1), "l": (2, 1),
    "n": (0, 2), "o": (1, 2),
}  # fmt: skip

# Approximate arithmetic per output pixel (adds, multiplies, min/max, compares each one op),
# counted from the steps below: luma of 12 taps (36), four gradient sets (4 x 22), the
# direction and kernel shape (~25), 12 kernel taps (12 x 21), the normalise and dering
# (~30); RCAS: luma-free limiter and 5-tap mix (~60). Used for the cost column only.
EASU_OPS_PER_PIXEL = 36 + 4 * 22 + 25 + 12 * 21 + 30
RCAS_OPS_PER_PIXEL = 60


def _luma2(c: np.ndarray) -> np.ndarray:
    """Luma times 2 (FSR's R/2 + G + B/2, two multiply-adds)."""
    return c[..., 2] * _F(0.5) + (c[..., 0] * _F(0.5) + c[..., 1])


def _gradient(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, e: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The '+' around centre c (a above, b left, d right, e below): (dir x, dir y, edgeness).

    Edgeness per axis is |d - b| / max(|d - c|, |c - b|), saturated and squared: 1 where
    the luma runs one way across c, 0 where it turns back (a thin line or a dot).
    """
    tiny = _F(1e-20)
    dir_x = d - b
    len_x = np.minimum(
        np.abs(dir_x) / np.maximum(np.maximum(np.abs(d - c), np.abs(c - b)), tiny), 1
    )
    dir_y = e - a
    len_y = np.minimum(
        np.abs(dir_y) / np.maximum(np.maximum(np.abs(e - c), np.abs(c - a)), tiny), 1
    )
    return dir_x, dir_y, len_x * len_x + len_y * len_y


def easu(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Edge-adaptive upsampling of float32 RGB (h, w, 3) to (out_h, out_w, 3)."""
    src = np.asarray(src, _F)
    h, w = src.shape[:2]
    sy, sx = _F(h / out_h), _F(w / out_w)
    oy, ox = _F(0.5 * h / out_h - 0.5), _F(0.5 * w / out_w - 0.5)
    ppy = np.arange(out_h, dtype=_F)[:, None] * sy + oy
    ppx = np.arange(out_w, dtype=_F)[None, :] * sx + ox
    fy, fx = np.floor(ppy), np.floor(ppx)
    py = np.broadcast_to(ppy - fy, (out_h, out_w))
    px = np.broadcast_to(ppx - fx, (out_h, out_w))
    iy, ix = fy.astype(np.int64), fx.astype(np.int64)
    tap = {
        k: src[np.clip(iy + dy, 0, h - 1), np.clip(ix + dx, 0, w - 1)]
        for k, (dx, dy) in TAPS.items()
    }
    lum = {k: _luma2(v) for k, v in tap.items()}
    one = _F(1.0)
    weights = ((one - px) * (one - py), px * (one - py), (one - px) * py, px * py)
    centres = ("befgj", "cfghk", "fijkn", "gjklo")  # a b c d e of each of f, g, j, k
    dir_x = np.zeros((out_h, out_w), _F)
    dir_y = np.zeros((out_h, out_w), _F)
    edge = np.zeros((out_h, out_w), _F)
    for wt, names in zip(weights, centres, strict=True):
        gx, gy, ln = _gradient(*(lum[n] for n in names))
        dir_x = dir_x + gx * wt
        dir_y = dir_y + gy * wt
        edge = edge + ln * wt
    # normalise the direction; no direction at all reads as horizontal
    dir2 = dir_x * dir_x + dir_y * dir_y
    flat = dir2 < _F(1.0 / 32768.0)
    rsq = np.where(flat, one, one / np.sqrt(np.where(flat, one, dir2)))
    dir_x = np.where(flat, one, dir_x) * rsq
    dir_y = dir_y * rsq
    # edgeness {0..2} -> {0..1}, squared; the kernel's shape follows it
    edge = edge * _F(0.5)
    edge = edge * edge
    stretch = (dir_x * dir_x + dir_y * dir_y) / np.maximum(np.abs(dir_x), np.abs(dir_y))
    len_x = one + (stretch - one) * edge
    len_y = one + _F(-0.5) * edge
    lobe = _F(0.5) + _F((1.0 / 4.0 - 0.04) - 0.5) * edge
    clip = one / lobe
    acc = np.zeros((out_h, out_w, 3), _F)
    acc_w = np.zeros((out_h, out_w), _F)
    for k, (dx, dy) in TAPS.items():
        off_x = _F(dx) - px
        off_y = _F(dy) - py
        vx = (off_x * dir_x + off_y * dir_y) * len_x
        vy = (off_x * -dir_y + off_y * dir_x) * len_y
        d2 = np.minimum(vx * vx + vy * vy, clip)
        wb = _F(2.0 / 5.0) * d2 - one
        wa = lobe * d2 - one
        wb = wb * wb
        wa = wa * wa
        wb = _F(25.0 / 16.0) * wb - _F(25.0 / 16.0 - 1.0)
        wt = wb * wa
        acc = acc + tap[k] * wt[..., None]
        acc_w = acc_w + wt
    near = np.stack([tap["f"], tap["g"], tap["j"], tap["k"]])
    out = acc / acc_w[..., None]
    return np.minimum(near.max(axis=0), np.maximum(near.min(axis=0), out)).astype(_F)


def rcas(img: np.ndarray, sharpness: float = SHARPNESS) -> np.ndarray:
    """Robust contrast-adaptive sharpening of float32 RGB (h, w, 3), edges clamped."""
    e = np.clip(np.asarray(img, _F), 0, 1)
    p = np.pad(e, ((1, 1), (1, 1), (0, 0)), mode="edge")
    b, d, f, hh = p[:-2, 1:-1], p[1:-1, :-2], p[1:-1, 2:], p[2:, 1:-1]
    mn4 = np.minimum(np.minimum(np.minimum(b, d), f), hh)
    mx4 = np.maximum(np.maximum(np.maximum(b, d), f), hh)
    hit_min = np.minimum(mn4, e) / np.maximum(_F(4.0) * mx4, _F(1e-6))
    hit_max = (_F(1.0) - np.maximum(mx4, e)) / np.minimum(_F(4.0) * mn4 - _F(4.0), _F(-1e-6))
    lobe_c = np.maximum(-hit_min, hit_max).max(axis=2)
    lobe = np.maximum(_F(-RCAS_LIMIT), np.minimum(lobe_c, _F(0.0))) * _F(2.0**-sharpness)
    lobe = lobe[..., None]
    return ((lobe * b + lobe * d + lobe * hh + lobe * f + e) / (_F(4.0) * lobe + _F(1.0))).astype(
        _F
    )


def edge_upscale(
    lr: np.ndarray, size_hw: tuple[int, int], sharpness: float = SHARPNESS
) -> np.ndarray:
    """uint8 RGB (h, w, 3) -> uint8 at size_hw: EASU then RCAS, rounded and clipped."""
    x = np.asarray(lr, _F) / _F(255.0)
    y = rcas(easu(x, size_hw[0], size_hw[1]), sharpness)
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def ops_per_1080p() -> float:
    """Approximate arithmetic for one 1920x1080 output frame (EASU + RCAS)."""
    return float((EASU_OPS_PER_PIXEL + RCAS_OPS_PER_PIXEL) * 1920 * 1080)

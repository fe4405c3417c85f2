"""A frame-number marker drawn into the pixels, and its reader.

The marker is one row of square blocks in the top-left corner on a black pad:

    [W][B][16 data bits, MSB first][6 check bits]      white = 1, black = 0

Block size is ``block_size(height)`` of the frame it is drawn into (4 px at 90 lines, 6 at
180), so it survives VP8/H.264 at streaming bitrates and any integer upscale. The reader
does not need to know the scale: it tries every block size and keeps the one whose guard
and check bits agree. The viewer page (static/marker.js) implements the same reader.
"""

from __future__ import annotations

import av
import numpy as np

from .frames import frame_from_planes, planes_of

DATA_BITS = 16
CHECK_BITS = 6
BLOCKS = 2 + DATA_BITS + CHECK_BITS
MODULO = 1 << DATA_BITS


def block_size(height: int) -> int:
    return max(4, round(height / 30))


def check_of(n: int) -> int:
    """Six check bits of a 16-bit number (bits mixed so near-miss reads fail)."""
    n &= MODULO - 1
    x = (n * 0x9E37) & 0xFFFF
    return ((x >> 10) ^ (n >> 6) ^ n ^ 0x2A) & 0x3F


def bits_of(n: int) -> list[int]:
    n &= MODULO - 1
    data = [(n >> (DATA_BITS - 1 - k)) & 1 for k in range(DATA_BITS)]
    c = check_of(n)
    check = [(c >> (CHECK_BITS - 1 - k)) & 1 for k in range(CHECK_BITS)]
    return [1, 0, *data, *check]


def marker_box(height: int) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the marker including its black pad."""
    b = block_size(height)
    return 0, 0, (BLOCKS + 2) * b, 3 * b


def draw(luma: np.ndarray, n: int, black: int = 16, white: int = 235) -> None:
    """Draw frame number `n` (mod 2**16) into a luma plane (H, W) in place."""
    h = luma.shape[0]
    b = block_size(h)
    _, _, bw, bh = marker_box(h)
    luma[:bh, :bw] = black
    for k, bit in enumerate(bits_of(n)):
        if bit:
            x = (k + 1) * b
            luma[b : 2 * b, x : x + b] = white


def draw_rgb(rgb: np.ndarray, n: int) -> None:
    """The same marker drawn into an (H, W, 3) uint8 RGB image in place."""
    h = rgb.shape[0]
    b = block_size(h)
    _, _, bw, bh = marker_box(h)
    rgb[:bh, :bw] = 0
    for k, bit in enumerate(bits_of(n)):
        if bit:
            x = (k + 1) * b
            rgb[b : 2 * b, x : x + b] = 255


def _decode(luma: np.ndarray, b: float) -> int | None:
    """Read with block size `b` (float: a scaled frame need not be an integer multiple)."""
    h, w = luma.shape
    half = max(1, int(b / 4))
    yc = int(1.5 * b)
    if yc + half >= h or (BLOCKS + 1) * b >= w:
        return None
    row = luma[yc - half : yc + half + 1].astype(np.float32)
    values = []
    for k in range(BLOCKS):
        xc = int((k + 1.5) * b)
        values.append(row[:, xc - half : xc + half + 1].mean())
    hi, lo = values[0], values[1]
    if hi - lo < 60:
        return None
    thr = (hi + lo) / 2
    bits = [1 if v > thr else 0 for v in values]
    # a clean read: every block well away from the threshold
    if min(abs(v - thr) for v in values) < (hi - lo) * 0.2:
        return None
    # structure: the black pad above, below and left of the bit row must be dark too (a
    # wrong block size on a busy picture can pass the check bits by chance; this it cannot)
    dark = thr - (hi - lo) * 0.2
    for yc_pad in (int(0.5 * b), int(2.5 * b)):
        pad = luma[max(0, yc_pad - half) : yc_pad + half + 1].astype(np.float32)
        for k in range(-1, BLOCKS + 1):
            xc = int((k + 1.5) * b)
            if pad[:, max(0, xc - half) : xc + half + 1].mean() > dark:
                return None
    xc = int(0.5 * b)
    if row[:, max(0, xc - half) : xc + half + 1].mean() > dark:
        return None
    n = 0
    for bit in bits[2 : 2 + DATA_BITS]:
        n = (n << 1) | bit
    c = 0
    for bit in bits[2 + DATA_BITS :]:
        c = (c << 1) | bit
    return n if c == check_of(n) else None


def read(luma: np.ndarray, hint: float | None = None) -> int | None:
    """The frame number in a luma plane (H, W) uint8, or None when no marker reads cleanly.

    `hint` is a block size to try first (e.g. the source block size times the scale)."""
    luma = np.asarray(luma)
    if luma.ndim == 3:  # RGB(A): take a luma-like mean
        luma = luma[..., :3].mean(axis=2)
    h = luma.shape[0]
    candidates: list[float] = []
    if hint:
        candidates.append(float(hint))
    candidates.append(float(block_size(h)))
    for scale in (2, 3, 4, 1.5):  # an upscaled frame's marker, drawn at the source size
        candidates.append(block_size(round(h / scale)) * scale)
    candidates += [float(b) for b in range(3, 65)]
    seen = set()
    for b in candidates:
        if b in seen:
            continue
        seen.add(b)
        n = _decode(luma, b)
        if n is not None:
            return n
    return None


def unwrap(n16: int, near: int) -> int:
    """The full counter value whose low 16 bits are `n16`, nearest to `near`."""
    base = near - (near % MODULO)
    return min((base - MODULO + n16, base + n16, base + MODULO + n16), key=lambda c: abs(c - near))


def with_marker(frame: av.VideoFrame, n: int) -> av.VideoFrame:
    """A copy of `frame` with frame number `n` drawn in (and its chroma neutral there), for
    sources whose pictures do not carry one."""
    y, u, v = planes_of(frame)
    draw(y, n)
    _, _, bw, bh = marker_box(y.shape[0])
    u[: (bh + 1) // 2, : (bw + 1) // 2] = 128
    v[: (bh + 1) // 2, : (bw + 1) // 2] = 128
    out = frame_from_planes(y, u, v)
    out.colorspace, out.color_range = frame.colorspace, frame.color_range
    return out

"""Short game-like sequences whose motion is known exactly, for measuring temporal stability.

A sequence is composed, frame by frame, from rigid layers that move by whole target pixels:
- a background (a whole `draw_frame` picture, larger than the view) that scrolls at a
  constant velocity, or stands still;
- pixel-art sprites with binary alpha, each moving at its own velocity, entering and leaving;
- a static HUD: opaque panels with bars and text, and free-standing text with binary alpha.

Because every layer moves by an integer number of target pixels and no pixel mixes two
layers, frame t+1 at q equals frame t at q - v(q) (v: the velocity of the layer showing at q)
wherever that source lies in the view and shows the same layer at t. Elsewhere the pixel was
uncovered or entered the view: `valid` is false there (the occlusion mask). Odd velocities
move the half-resolution input by half a pixel per frame, which is where upscalers crawl and
shimmer; the HUD next to moving content is where they flicker.

Every frame of a sequence is degraded with the same filter (one chosen per sequence), so the
only change between inputs is the motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .dataset import DOWNSCALE_FILTERS, WORDS, Degradation, draw_frame, font, palette, sprite


@dataclass
class Layer:
    rgb: np.ndarray  # uint8 (h, w, 3)
    alpha: np.ndarray  # bool (h, w): the pixels it covers
    origin: tuple[int, int]  # (y, x) of its top-left in the view at frame 0
    velocity: tuple[int, int]  # (dy, dx) target pixels per frame


@dataclass
class Sequence:
    """Frames (targets), their degraded inputs, and the exact motion between them."""

    targets: list[np.ndarray]  # T frames, uint8 (h, w, 3)
    inputs: list[np.ndarray]  # T degraded frames
    motion: list[np.ndarray]  # T-1: int (h, w, 2), (dy, dx) of the pixel at t+1 since t
    valid: list[np.ndarray]  # T-1: bool (h, w), the source of the pixel at t+1 is seen at t
    how: str  # the degradation and motion, in words

    @property
    def static(self) -> list[np.ndarray]:
        """Per transition: pixels that did not move and were not uncovered (the HUD, a
        still background)."""
        return [v & ~m.any(axis=2) for m, v in zip(self.motion, self.valid, strict=True)]


def warp(frame: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Frame t moved to t+1: out[q] = frame[q - motion[q]] (sources clamped to the view;
    where they fall outside, `valid` masks the pixel anyway)."""
    h, w = frame.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    sy = np.clip(yy - motion[..., 0], 0, h - 1)
    sx = np.clip(xx - motion[..., 1], 0, w - 1)
    return frame[sy, sx]


def _velocity(rng: np.random.Generator, most: int) -> tuple[int, int]:
    """A non-zero velocity, odd along at least one axis (half-pixel steps in the input)."""
    while True:
        dy, dx = (int(v) for v in rng.integers(-most, most + 1, size=2))
        if dy % 2 or dx % 2:
            return dy, dx


def _hud(rng: np.random.Generator, h: int, w: int, colors: list) -> Layer:
    """Static HUD: opaque panels (bars, antialiased text) and free text with binary alpha."""
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 3))):
        pw, ph = int(rng.integers(w // 5, w // 3)), int(rng.integers(14, 28))
        x0 = int(rng.integers(0, max(w - pw, 1)))
        y0 = int(rng.choice([int(rng.integers(0, 8)), h - ph - int(rng.integers(0, 8))]))
        draw.rectangle((x0, y0, x0 + pw, y0 + ph), fill=(16, 16, 24, 255), outline=(230,) * 4)
        fill = float(rng.random())
        draw.rectangle(
            (x0 + 3, y0 + ph - 7, x0 + 3 + int((pw - 6) * fill), y0 + ph - 3),
            fill=(*colors[int(rng.integers(0, 4))], 255),
        )
        word = f"{WORDS[int(rng.integers(0, len(WORDS)))]} {int(rng.integers(0, 9999))}"
        draw.text((x0 + 3, y0 + 1), word, fill=(255, 255, 255, 255), font=font(11))
    rgba = np.asarray(img, np.uint8)
    alpha = rgba[..., 3] == 255  # panels: opaque (their text is drawn inside them)
    for _ in range(int(rng.integers(1, 3))):  # free-standing text, hard-edged, drop shadow
        txt = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        tdraw = ImageDraw.Draw(txt)
        word = WORDS[int(rng.integers(0, len(WORDS)))]
        xy = (int(rng.integers(0, max(w - 60, 1))), int(rng.integers(h // 4, 3 * h // 4)))
        f = font(int(rng.integers(10, 18)))
        tdraw.text((xy[0] + 1, xy[1] + 1), word, fill=(0, 0, 0, 255), font=f)
        tdraw.text(xy, word, fill=(*colors[int(rng.integers(0, len(colors)))], 255), font=f)
        t = np.asarray(txt, np.uint8)
        hard = (t[..., 3] >= 128) & ~alpha
        rgba = rgba.copy()
        rgba[hard, :3] = t[hard, :3]
        alpha = alpha | hard
    return Layer(rgba[..., :3].copy(), alpha, (0, 0), (0, 0))


def _layers(rng: np.random.Generator, h: int, w: int, frames: int) -> list[Layer]:
    """Background, sprites, HUD: bottom to top."""
    still = rng.random() < 0.25
    v_bg = (0, 0) if still else _velocity(rng, 3)
    span_y, span_x = abs(v_bg[0]) * (frames - 1), abs(v_bg[1]) * (frames - 1)
    canvas = draw_frame(rng, h + span_y, w + span_x)
    # the canvas's corner in the view: the view stays on the canvas for the whole scroll
    origin = (-span_y if v_bg[0] > 0 else 0, -span_x if v_bg[1] > 0 else 0)
    layers = [Layer(canvas, np.ones(canvas.shape[:2], bool), origin, v_bg)]
    colors = palette(rng, 4)
    for _ in range(int(rng.integers(2, 6))):
        rgba = np.asarray(sprite(rng, colors[:4]), np.uint8)
        sh, sw = rgba.shape[:2]
        v = _velocity(rng, 4)
        oy = int(rng.integers(-sh // 2, h - sh // 2))
        ox = int(rng.integers(-sw // 2, w - sw // 2))
        layers.append(Layer(rgba[..., :3].copy(), rgba[..., 3] == 255, (oy, ox), v))
    layers.append(_hud(rng, h, w, colors))
    return layers


def _compose(layers: list[Layer], h: int, w: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame t and the index of the layer showing at each pixel."""
    img = np.zeros((h, w, 3), np.uint8)
    owner = np.full((h, w), -1, np.int32)
    for k, layer in enumerate(layers):
        y0 = layer.origin[0] + layer.velocity[0] * t
        x0 = layer.origin[1] + layer.velocity[1] * t
        lh, lw = layer.alpha.shape
        vy0, vy1 = max(y0, 0), min(y0 + lh, h)
        vx0, vx1 = max(x0, 0), min(x0 + lw, w)
        if vy0 >= vy1 or vx0 >= vx1:
            continue
        a = layer.alpha[vy0 - y0 : vy1 - y0, vx0 - x0 : vx1 - x0]
        view = img[vy0:vy1, vx0:vx1]
        view[a] = layer.rgb[vy0 - y0 : vy1 - y0, vx0 - x0 : vx1 - x0][a]
        owner[vy0:vy1, vx0:vx1][a] = k
    return img, owner


def draw_sequence(
    rng: np.random.Generator, h: int, w: int, frames: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], str]:
    """(frames, motion, valid, what moves) of one sequence: see the module's docstring."""
    layers = _layers(rng, h, w, frames)
    dy, dx = layers[0].velocity
    what = f"background {f'scrolls {dx:+d},{dy:+d}' if dy or dx else 'still'}, "
    what += f"{len(layers) - 2} sprites"
    velocity = np.array([layer.velocity for layer in layers], np.int64)
    shown = [_compose(layers, h, w, t) for t in range(frames)]
    yy, xx = np.mgrid[0:h, 0:w]
    motion, valid = [], []
    for (_, before), (_, after) in zip(shown, shown[1:], strict=False):
        m = velocity[after]
        sy, sx = yy - m[..., 0], xx - m[..., 1]
        inside = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
        same = before[np.clip(sy, 0, h - 1), np.clip(sx, 0, w - 1)] == after
        motion.append(m)
        valid.append(inside & same)
    return [img for img, _ in shown], motion, valid, what


def held_out_sequences(
    degradation: Degradation, count: int, frames: int, size: tuple[int, int], seed: int
) -> list[Sequence]:
    """`count` sequences of `frames` frames of `size` (h, w), from their own seed (x2 only)."""
    if degradation.task != "upscale":
        raise ValueError("sequences are made for upscalers (task upscale)")
    rng = np.random.default_rng(seed)
    h, w = size[0] // 2 * 2, size[1] // 2 * 2
    out = []
    for k in range(count):
        targets, motion, valid, what = draw_sequence(rng, h, w, frames)
        name = degradation.downscale[k % len(degradation.downscale)]  # each filter in turn
        inputs = [
            np.asarray(
                Image.fromarray(f, "RGB").resize((w // 2, h // 2), DOWNSCALE_FILTERS[name]),
                np.uint8,
            ).copy()
            for f in targets
        ]
        out.append(Sequence(targets, inputs, motion, valid, f"x2 {name}, {what}"))
    return out

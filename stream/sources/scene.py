"""A synthetic game-like scene, rendered with numpy (and Pillow for the HUD text).

Scrolling textured background (bricks with 1-px mortar and noise), parallax hills, bouncing
sprites with outlines, a fine-detail grille (1-px lines: what a good upscaler keeps and
bilinear smears), a HUD with text and a health bar, a cursor driven by client input, and
the frame-number marker (stream.marker) in the top-left corner.
"""

from __future__ import annotations

import math
import threading

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import marker


def _bricks(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A tileable brick texture (h, w, 3) uint8 with 1-px mortar and per-brick tint."""
    bh, bw = max(4, h // 12), max(8, w // 10)
    yy, xx = np.mgrid[0:h, 0:w]
    row = yy // bh
    xs = xx + (row % 2) * (bw // 2)
    col = xs // bw
    tint = rng.integers(-25, 25, (row.max() + 2, col.max() + 2))
    base = np.array([150, 70, 50], np.int32)
    img = base + tint[row, col][..., None]
    img += rng.integers(-12, 12, (h, w, 1))
    mortar = (yy % bh == 0) | (xs % bw == 0)
    img[mortar] = (200, 195, 185)
    return np.clip(img, 0, 255).astype(np.uint8)


class Scene:
    """Renders frame k of the scene as an RGB array, then a yuv420p av.VideoFrame."""

    def __init__(self, width: int, height: int, seed: int = 7) -> None:
        if width < 64 or height < 36:
            raise ValueError(f"testsrc needs at least 64x36, not {width}x{height}")
        self.width, self.height = width, height
        rng = np.random.default_rng(seed)
        self.texture = _bricks(height, width, rng)
        self.texture = np.concatenate([self.texture, self.texture], axis=1)  # for scrolling
        yy, xx = np.mgrid[0:height, 0 : 2 * width]
        self.hills = (
            height * 0.72 + height * 0.08 * np.sin(xx[0] * 2 * math.pi / width * 2)
        ).astype(int)
        self.sky = np.zeros((height, width, 3), np.uint8)
        g = np.linspace(0, 1, height)[:, None]
        self.sky[..., 0] = (40 + 60 * g).astype(np.uint8)
        self.sky[..., 1] = (60 + 90 * g).astype(np.uint8)
        self.sky[..., 2] = (120 + 100 * g).astype(np.uint8)
        r = max(4, height // 12)
        sy, sx = np.mgrid[-r : r + 1, -r : r + 1]
        d = np.sqrt(sx**2 + sy**2)
        self.sprite_r = r
        self.sprite_fill = d <= r - 1
        self.sprite_edge = (d <= r) & ~self.sprite_fill
        self.sprites = [
            (
                rng.uniform(0.1, 0.9),
                rng.uniform(0.1, 0.6),
                rng.uniform(-1, 1),
                rng.uniform(-1, 1),
                c,
            )
            for c in ((240, 200, 40), (60, 220, 90), (230, 60, 200), (60, 200, 240))
        ]
        gs = max(12, height // 5)
        grille = np.zeros((gs, gs, 3), np.uint8)
        grille[::2] = 230
        grille[:, ::3] = (30, 30, 30)
        self.grille = grille
        self.font = ImageFont.load_default(size=max(8, height // 14))
        self.lock = threading.Lock()
        self.cursor = (0.5, 0.5)
        self.last_key = ""
        self.clicks = 0

    # input hook: the service calls this with events from viewers' data channels
    def on_input(self, event: dict) -> None:
        kind = event.get("kind", "")
        with self.lock:
            if kind in ("mousemove", "mousedown") and "x" in event and "y" in event:
                x = min(1.0, max(0.0, float(event["x"])))
                y = min(1.0, max(0.0, float(event["y"])))
                self.cursor = (x, y)
            if kind == "mousedown":
                self.clicks += 1
            if kind == "keydown":
                self.last_key = str(event.get("key", ""))[:12]

    def rgb(self, k: int, fps: float = 30.0, hud: str = "") -> np.ndarray:
        h, w = self.height, self.width
        t = k / fps
        img = self.sky.copy()
        # far layer: hills, scrolling slowly
        off_far = int(t * w * 0.05) % w
        hill_h = self.hills[off_far : off_far + w]
        ys = np.arange(h)[:, None]
        img[ys >= hill_h[None, :]] = (50, 110, 60)
        # near layer: a brick wall band at the bottom, scrolling at full speed
        band = h // 4
        off = int(t * w * 0.25) % w
        img[h - band :] = self.texture[h - band :, off : off + w]
        # fine detail: a grille that scrolls with the wall
        gs = self.grille.shape[0]
        gx = (w - (int(t * w * 0.25) % (w + gs))) % (w + gs) - gs
        x0, x1 = max(0, gx), min(w, gx + gs)
        if x1 > x0:
            img[h - band - gs : h - band, x0:x1] = self.grille[:, x0 - gx : x1 - gx]
        # sprites bouncing around
        r = self.sprite_r
        for x, y, vx, vy, colour in self.sprites:
            px = _bounce(x + vx * 0.2 * t) * (w - 2 * r - 1) + r
            py = _bounce(y + vy * 0.2 * t) * (h - band - 2 * r - 1) + r
            cx, cy = int(px), int(py)
            patch = img[cy - r : cy + r + 1, cx - r : cx + r + 1]
            if patch.shape[:2] == self.sprite_fill.shape:
                patch[self.sprite_fill] = colour
                patch[self.sprite_edge] = (15, 15, 15)
        # HUD: text and a health bar
        with self.lock:
            cursor, key, clicks = self.cursor, self.last_key, self.clicks
        text = f"SCORE {k * 10:07d}  FRAME {k}  {hud}"
        if key:
            text += f"  KEY {key}"
        self._text(img, text, (marker.marker_box(h)[2] + 4, 2))
        bar_w = w // 4
        health = 0.5 + 0.5 * math.sin(t * 0.7)
        y0 = h - band - max(6, h // 30) - 2
        img[y0 : y0 + max(3, h // 45), 4 : 4 + bar_w] = (60, 20, 20)
        img[y0 : y0 + max(3, h // 45), 4 : 4 + int(bar_w * health)] = (220, 40, 40)
        # cursor: a crosshair where the viewer's mouse is
        cx, cy = int(cursor[0] * (w - 1)), int(cursor[1] * (h - 1))
        arm = max(4, h // 20)
        img[cy, max(0, cx - arm) : cx + arm + 1] = (255, 255, 255)
        img[max(0, cy - arm) : cy + arm + 1, cx] = (255, 255, 255)
        if clicks % 2:
            img[max(0, cy - 1) : cy + 2, max(0, cx - 1) : cx + 2] = (255, 40, 40)
        marker.draw_rgb(img, k)
        return img

    def _text(self, img: np.ndarray, text: str, pos: tuple[int, int]) -> None:
        _, _, r, b = self.font.getbbox(text)
        tw, th = min(r + 2, img.shape[1] - pos[0]), min(b + 2, img.shape[0] - pos[1])
        if tw <= 0 or th <= 0:
            return
        mask = Image.new("L", (tw, th), 0)
        ImageDraw.Draw(mask).text((1, 0), text, fill=255, font=self.font)
        m = np.asarray(mask) > 127
        region = img[pos[1] : pos[1] + th, pos[0] : pos[0] + tw]
        region[m] = (255, 255, 210)

    def frame(self, k: int, fps: float = 30.0, hud: str = "") -> av.VideoFrame:
        return to_frame(self.rgb(k, fps, hud))


def to_frame(rgb: np.ndarray) -> av.VideoFrame:
    """RGB (H, W, 3) uint8 to a yuv420p frame tagged BT.601 limited range."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace="itu601", dst_color_range="MPEG"
    )
    frame.colorspace, frame.color_range = 6, 1
    return frame


def slate(width: int, height: int, text: str, k: int = 0) -> av.VideoFrame:
    """A plain dark frame with a message (e.g. "NO SOURCE") and the frame marker."""
    img = np.full((height, width, 3), 24, np.uint8)
    font = ImageFont.load_default(size=max(10, height // 8))
    pil = Image.fromarray(img)
    d = ImageDraw.Draw(pil)
    x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
    d.text(
        ((width - (x1 - x0)) // 2, (height - (y1 - y0)) // 2), text, fill=(230, 230, 230), font=font
    )
    img = np.array(pil)
    marker.draw_rgb(img, k)
    return to_frame(img)


def _bounce(v: float) -> float:
    """Triangle wave in [0, 1]."""
    v = v % 2.0
    return v if v <= 1.0 else 2.0 - v

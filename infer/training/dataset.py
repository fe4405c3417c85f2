"""Seeded, reproducible game-like frames and their degradations, for training and evaluation.

Frames are drawn with numpy + PIL only: gradients and tiled textures (checker, stripes,
noise) as backgrounds, then hard-edged shapes, pixel-art sprites, thin lines, text and HUD
bars on top. The same seed always draws the same frames (PIL's drawing is deterministic and
every random choice comes from one `numpy.random.Generator`).

Degradations:
- upscale (x2): the low-resolution input is the frame downscaled by PIL bicubic or box
  (area) filtering; the target is the frame.
- denoise: the input is the frame with additive Gaussian noise or JPEG compression
  (PIL, quality 20-60 by default); the target is the frame.

Training samples aligned random patches from a pool of generated frames; evaluation uses
whole frames drawn from a different seed (`held_out`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TASKS = ("upscale", "denoise")
DOWNSCALE_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX}

WORDS = (
    "SCORE", "HP", "MP", "LEVEL", "AMMO", "READY", "GAME OVER", "PAUSE", "x3", "1UP",
    "QUEST", "LOOT", "BOSS", "FPS 60", "PING 23ms", "K/D 4.2", "WAVE 7", "+150 XP",
)  # fmt: skip


def _color(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(lo, hi, size=3))
    return r, g, b


def palette(rng: np.random.Generator, n: int) -> list[tuple[int, int, int]]:
    """A few saturated colours, as game art tends to use, plus black and white."""
    base = [_color(rng) for _ in range(n)]
    return base + [(0, 0, 0), (255, 255, 255)]


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a = np.array(_color(rng), np.float32)
    b = np.array(_color(rng), np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xx * np.cos(angle) + yy * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    if rng.random() < 0.3:  # radial (vignette, sky glow)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        t = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        t = t / max(float(t.max()), 1.0)
    return a + (b - a) * t[..., None]


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    c1 = np.array(_color(rng), np.float32)
    c2 = np.array(_color(rng), np.float32)
    kind = rng.integers(0, 4)
    yy, xx = np.mgrid[0:h, 0:w]
    # Periods start at 3-4 px: finer random detail is below the input's Nyquist limit after
    # x2 downscaling, unrecoverable by any upscaler, and would only drown the loss in noise.
    if kind == 0:  # checker
        s = int(rng.integers(3, 24))
        m = ((yy // s + xx // s) % 2).astype(np.float32)
    elif kind == 1:  # stripes at 0/45/90 degrees
        s = int(rng.integers(3, 16))
        d = [xx, yy, xx + yy, xx - yy][int(rng.integers(0, 4))]
        m = ((d // s) % 2).astype(np.float32)
    elif kind == 2:  # blocky value noise (pixel-art grass, gravel)
        s = int(rng.integers(4, 10))
        small = rng.random(((h + s - 1) // s, (w + s - 1) // s)).astype(np.float32)
        m = np.kron(small, np.ones((s, s), np.float32))[:h, :w]
    else:  # bricks
        bh, bw = int(rng.integers(4, 14)), int(rng.integers(8, 28))
        row = yy // bh
        shift = (row % 2) * (bw // 2)
        m = (((yy % bh) == 0) | (((xx + shift) % bw) == 0)).astype(np.float32)
    return c1 + (c2 - c1) * m[..., None]


def sprite(rng: np.random.Generator, colors: list) -> Image.Image:
    """A symmetric pixel-art sprite, scaled up with nearest neighbour (hard pixel edges)."""
    n = int(rng.integers(5, 12))
    half = rng.integers(0, len(colors) + 2, size=(n, (n + 1) // 2))
    grid = np.concatenate([half, half[:, ::-1][:, n % 2 :]], axis=1)
    rgba = np.zeros((n, n, 4), np.uint8)
    for k, c in enumerate(colors):
        rgba[grid == k] = (*c, 255)
    scale = int(rng.integers(1, 5))
    return Image.fromarray(rgba, "RGBA").resize((n * scale, n * scale), Image.Resampling.NEAREST)


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font only
        return ImageFont.load_default()


def draw_frame(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One game-like RGB frame, uint8 (h, w, 3)."""
    bg = _gradient(rng, h, w) if rng.random() < 0.5 else _texture(rng, h, w)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    colors = palette(rng, 4)
    area = h * w
    # textured panels (walls, floors, windows)
    for _ in range(int(rng.integers(0, 3))):
        ph, pw = int(rng.integers(h // 6, h // 2 + 2)), int(rng.integers(w // 6, w // 2 + 2))
        y0, x0 = int(rng.integers(0, max(h - ph, 1))), int(rng.integers(0, max(w - pw, 1)))
        tex = np.clip(_texture(rng, ph, pw), 0, 255).astype(np.uint8)
        img.paste(Image.fromarray(tex, "RGB"), (x0, y0))
    # hard-edged shapes
    for _ in range(int(rng.integers(3, 8 + area // 8000))):
        c = colors[int(rng.integers(0, len(colors)))]
        x0, y0 = int(rng.integers(-w // 8, w)), int(rng.integers(-h // 8, h))
        x1 = x0 + int(rng.integers(4, max(w // 3, 5)))
        y1 = y0 + int(rng.integers(4, max(h // 3, 5)))
        kind = int(rng.integers(0, 4))
        outline = colors[int(rng.integers(0, len(colors)))] if rng.random() < 0.4 else None
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=c, outline=outline)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=c, outline=outline)
        elif kind == 2:
            pts = [(int(rng.integers(x0, x1)), int(rng.integers(y0, y1))) for _ in range(3)]
            draw.polygon(pts, fill=c, outline=outline)
        else:
            r = int(rng.integers(2, 10))
            draw.rounded_rectangle((x0, y0, x1, y1), radius=r, fill=c, outline=outline)
    # sprites
    for _ in range(int(rng.integers(1, 4 + area // 20000))):
        spr = sprite(rng, colors[:4])
        x0 = int(rng.integers(0, max(w - spr.width, 1)))
        y0 = int(rng.integers(0, max(h - spr.height, 1)))
        img.paste(spr, (x0, y0), spr)
    # thin lines (wires, UI rules, laser beams)
    for _ in range(int(rng.integers(1, 6))):
        pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(2)]
        draw.line(
            pts, fill=colors[int(rng.integers(0, len(colors)))], width=int(rng.integers(1, 3))
        )
    # HUD: bars with frames and labels
    for _ in range(int(rng.integers(0, 3))):
        bw, bh = int(rng.integers(w // 6, w // 2 + 2)), int(rng.integers(4, 12))
        x0, y0 = int(rng.integers(0, max(w - bw, 1))), int(rng.integers(0, max(h - bh, 1)))
        fill = float(rng.random())
        draw.rectangle((x0, y0, x0 + bw, y0 + bh), fill=(20, 20, 20), outline=(240, 240, 240))
        draw.rectangle(
            (x0 + 1, y0 + 1, x0 + 1 + int((bw - 2) * fill), y0 + bh - 1),
            fill=colors[int(rng.integers(0, 4))],
        )
    # text
    for _ in range(int(rng.integers(1, 4 + area // 20000))):
        word = WORDS[int(rng.integers(0, len(WORDS)))]
        if rng.random() < 0.4:
            word = f"{word} {int(rng.integers(0, 99999))}"
        face = font(int(rng.integers(8, 24)))
        xy = (int(rng.integers(0, max(w - 20, 1))), int(rng.integers(0, max(h - 10, 1))))
        if rng.random() < 0.5:  # drop shadow / outline, as HUD text has
            draw.text((xy[0] + 1, xy[1] + 1), word, fill=(0, 0, 0), font=face)
        draw.text(xy, word, fill=colors[int(rng.integers(0, len(colors)))], font=face)
    return np.asarray(img, np.uint8).copy()


def package_images() -> list[np.ndarray]:
    """Sample photos shipped by installed packages (matplotlib, scikit-image), if any."""
    found: list[np.ndarray] = []
    try:
        import matplotlib

        d = Path(matplotlib.get_data_path()) / "sample_data"
        for name in ("grace_hopper.jpg",):
            if (d / name).is_file():
                found.append(np.asarray(Image.open(d / name).convert("RGB"), np.uint8))
    except Exception:  # noqa: BLE001 - optional extra data, never required
        pass
    try:
        from skimage import data as skdata

        for name in ("astronaut", "chelsea", "coffee", "rocket"):
            a = getattr(skdata, name)()
            if a.ndim == 3 and a.shape[2] == 3:
                found.append(np.asarray(a, np.uint8))
    except Exception:  # noqa: BLE001
        pass
    return found


# ---- degradations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Degradation:
    """How inputs are made from clean frames. Ranges are inclusive [lo, hi]."""

    task: str = "upscale"
    downscale: tuple[str, ...] = ("bicubic", "area")
    noise_sigma: tuple[float, float] = (5.0, 30.0)  # in 0..255 units
    jpeg_quality: tuple[int, int] = (20, 60)
    jpeg_fraction: float = 0.5  # share of denoise inputs that are JPEG rather than Gaussian

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {self.task!r}")
        bad = [d for d in self.downscale if d not in DOWNSCALE_FILTERS]
        if bad or not self.downscale:
            raise ValueError(f"downscale filters must be from {sorted(DOWNSCALE_FILTERS)}: {bad}")

    @property
    def scale(self) -> int:
        return 2 if self.task == "upscale" else 1

    def downscale_with(self, hr: np.ndarray, name: str) -> np.ndarray:
        """x2 downscale of a uint8 frame with the named filter (upscale task)."""
        h, w = hr.shape[:2]
        lr = Image.fromarray(hr, "RGB").resize((w // 2, h // 2), DOWNSCALE_FILTERS[name])
        return np.asarray(lr, np.uint8).copy()

    def apply(self, rng: np.random.Generator, hr: np.ndarray) -> tuple[np.ndarray, str]:
        """(degraded uint8 image, a short description of what was done)."""
        h, w = hr.shape[:2]
        img = Image.fromarray(hr, "RGB")
        if self.task == "upscale":
            name = self.downscale[int(rng.integers(0, len(self.downscale)))]
            return self.downscale_with(hr, name), f"x2 {name}"
        if rng.random() < self.jpeg_fraction:
            q = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=q)
            buf.seek(0)
            return np.asarray(Image.open(buf).convert("RGB"), np.uint8).copy(), f"jpeg q{q}"
        sigma = float(rng.uniform(*self.noise_sigma))
        noisy = hr.astype(np.float32) + rng.normal(0.0, sigma, hr.shape).astype(np.float32)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8), f"gauss s{sigma:.0f}"


def to_nchw(img: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 3) or (n, h, w, 3) -> float32 NCHW in [0, 1]."""
    a = img[None] if img.ndim == 3 else img
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float NCHW (n=1) or CHW in [0, 1] -> uint8 (h, w, 3), rounded and clipped."""
    a = x[0] if x.ndim == 4 else x
    return np.clip(np.rint(a.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def resize_baseline(lr: np.ndarray, size_hw: tuple[int, int], mode: str) -> np.ndarray:
    """PIL bicubic / bilinear upscaling of a uint8 image: the baselines a model must beat."""
    filt = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}[mode]
    h, w = size_hw
    return np.asarray(Image.fromarray(lr, "RGB").resize((w, h), filt), np.uint8).copy()


# ---- training patches and held-out frames -----------------------------------------------


class PatchPool:
    """A pool of generated frames and their degraded inputs; samples aligned patch batches.

    `patch` is the target (high-resolution) patch size; for x2 upscaling the input patch is
    half of it. Every frame is degraded once, when the pool is built.
    """

    def __init__(
        self,
        degradation: Degradation,
        frames: int,
        frame_size: tuple[int, int],
        seed: int,
        use_package_images: bool = False,
    ) -> None:
        self.deg = degradation
        s = degradation.scale
        rng = np.random.default_rng(seed)
        h, w = (frame_size[0] // s) * s, (frame_size[1] // s) * s
        clean = [draw_frame(rng, h, w) for _ in range(frames)]
        if use_package_images:
            for photo in package_images():
                ph, pw = (photo.shape[0] // s) * s, (photo.shape[1] // s) * s
                clean.append(photo[:ph, :pw])
        self.targets = clean
        degraded = [self.deg.apply(rng, c) for c in clean]
        self.inputs = [lr for lr, _ in degraded]
        self.hows = [how for _, how in degraded]  # "x2 bicubic", "jpeg q40"...

    def __len__(self) -> int:
        return len(self.targets)

    def batch(
        self, rng: np.random.Generator, batch: int, patch: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets) float32 NCHW in [0, 1]; random crops, flips and 90-degree turns."""
        s = self.deg.scale
        lp = patch // s
        xs, ys = [], []
        for _ in range(batch):
            k = int(rng.integers(0, len(self.targets)))
            lr, hr = self.inputs[k], self.targets[k]
            y = int(rng.integers(0, lr.shape[0] - lp + 1))
            x = int(rng.integers(0, lr.shape[1] - lp + 1))
            a = lr[y : y + lp, x : x + lp]
            b = hr[y * s : (y + lp) * s, x * s : (x + lp) * s]
            t = int(rng.integers(0, 8))
            if t & 1:
                a, b = a[:, ::-1], b[:, ::-1]
            if t & 2:
                a, b = a[::-1], b[::-1]
            if t & 4:
                a, b = a.transpose(1, 0, 2), b.transpose(1, 0, 2)
            xs.append(a)
            ys.append(b)
        return to_nchw(np.stack(xs)), to_nchw(np.stack(ys))


@dataclass
class EvalFrame:
    input: np.ndarray  # uint8 (h, w, 3), degraded
    target: np.ndarray  # uint8 (h*s, w*s, 3), clean
    how: str  # what degradation was applied


def held_out(
    degradation: Degradation, frames: int, size: tuple[int, int], seed: int
) -> list[EvalFrame]:
    """Whole frames for evaluation, from their own seed (never seen in training)."""
    s = degradation.scale
    rng = np.random.default_rng(seed)
    h, w = (size[0] // s) * s, (size[1] // s) * s
    out = []
    for _ in range(frames):
        hr = draw_frame(rng, h, w)
        lr, how = degradation.apply(rng, hr)
        out.append(EvalFrame(lr, hr, how))
    return out

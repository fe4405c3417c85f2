"""Generated clips of game-like motion for the rate-distortion bench (no downloads, seeded).

The test scene scrolls slowly; a streamed game also scrolls tile maps and pans fast, which is
where codecs spend their bits and where an upscaler can flicker. Each clip is a factory
(width, height, fps) -> render(k) giving frame k as uint8 RGB, deterministic, its geometry
proportional to the height so a bigger size is the same clip in more pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _tiles(t: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Four t x t tiles: grass (noise), stone (bricks, 1-px mortar), water (waves), path
    (dither): the textures of a 2D map."""
    yy, xx = np.mgrid[0:t, 0:t]
    grass = np.stack([40 + rng.integers(0, 40, (t, t)), 120 + rng.integers(0, 60, (t, t)),
                      30 + rng.integers(0, 30, (t, t))], -1)  # fmt: skip
    stone = np.full((t, t, 3), (128, 124, 118))
    bh = max(3, t // 3)
    mortar = (yy % bh == 0) | (((xx + (yy // bh % 2) * (t // 2)) % max(4, t // 2)) == 0)
    stone[mortar] = (60, 58, 55)
    wave = (np.sin((xx + 2 * yy) * 2 * np.pi / max(4, t // 2)) > 0.3)[..., None]
    water = np.where(wave, (90, 160, 230), (30, 80, 170))
    path = np.where((((xx // 2) + (yy // 2)) % 2 == 0)[..., None], (200, 170, 110), (170, 140, 90))
    return [np.asarray(a, np.uint8) for a in (grass, stone, water, path)]


def tilemap(width: int, height: int, fps: int) -> Callable[[int], np.ndarray]:
    """A 2D tile map scrolling diagonally (4 px right, 2 px down per frame at 180 lines)."""
    rng = np.random.default_rng(29)
    t = max(8, height // 10)
    tiles = _tiles(t, rng)
    m = 32
    index = rng.integers(0, len(tiles), (m, m))
    world = np.concatenate(
        [np.concatenate([tiles[index[r, c]] for c in range(m)], axis=1) for r in range(m)]
    )
    s = height / 180

    def render(k: int) -> np.ndarray:
        ox, oy = round(max(1.0, 4 * s) * k), round(max(1.0, 2 * s) * k)
        ys = (np.arange(height) + oy) % world.shape[0]
        xs = (np.arange(width) + ox) % world.shape[1]
        return world[np.ix_(ys, xs)]

    return render


def _sprite(scale: int, rng: np.random.Generator, colour: tuple[int, int, int]) -> np.ndarray:
    """An 8x8 pixel-art sprite (symmetric, outlined), scaled by nearest neighbour: RGBA."""
    half = rng.random((8, 4)) > 0.45
    shape = np.concatenate([half, half[:, ::-1]], axis=1)
    grown = shape.copy()
    grown[1:] |= shape[:-1]
    grown[:-1] |= shape[1:]
    grown[:, 1:] |= shape[:, :-1]
    grown[:, :-1] |= shape[:, 1:]
    img = np.zeros((8, 8, 4), np.uint8)
    img[grown] = (10, 10, 10, 255)
    img[shape] = (*colour, 255)
    return img.repeat(scale, 0).repeat(scale, 1)


def pan(width: int, height: int, fps: int) -> Callable[[int], np.ndarray]:
    """A fast pan (12 px per frame at 180 lines) over a city skyline with lit windows, with
    pixel-art sprites crossing it and a HUD line that stays put."""
    rng = np.random.default_rng(2929)
    s = height / 180
    world_w = width * 6
    world = np.zeros((height, world_w, 3), np.uint8)
    g = np.linspace(0, 1, height)[:, None]
    world[...] = np.stack([20 + 50 * g, 20 + 40 * g, 60 + 80 * g], -1).astype(np.uint8)[:, :1]
    x = 0
    while x < world_w:
        bw = int(rng.integers(int(20 * s), int(60 * s)))
        top = int(rng.integers(int(40 * s), int(130 * s)))
        shade = int(rng.integers(40, 90))
        world[top:, x : x + bw] = (shade, shade, shade + 10)
        step = max(3, int(6 * s))
        for wy in range(top + step, height - step, step):
            for wx in range(x + 2, x + bw - 3, step):
                if rng.random() < 0.55:
                    world[wy : wy + step // 2, wx : wx + step // 2] = (240, 220, 120)
        x += bw + int(rng.integers(0, int(8 * s) + 1))
    colours = [(230, 60, 60), (60, 200, 90), (240, 200, 40), (90, 140, 250), (220, 90, 220)]
    scale = max(1, round(2 * s))
    sprites = [
        (_sprite(scale, rng, c), rng.uniform(0, 2 * np.pi), rng.uniform(1, 5)) for c in colours
    ]
    font = ImageFont.load_default(size=max(8, height // 14))
    speed = max(2.0, 12 * s)

    def render(k: int) -> np.ndarray:
        ox = int(speed * k) % (world_w - width)
        img = world[:, ox : ox + width].copy()
        for i, (spr, phase, vx) in enumerate(sprites):
            sh, sw = spr.shape[:2]
            px = int((i * width / len(sprites) + vx * s * k) % (width - sw))
            py = int((0.5 + 0.35 * np.sin(phase + k * 0.15)) * (height - sh))
            patch = img[py : py + sh, px : px + sw]
            alpha = spr[..., 3:] > 0
            patch[...] = np.where(alpha, spr[..., :3], patch)
        hud = Image.new("L", (width, max(10, height // 10)), 0)
        ImageDraw.Draw(hud).text(
            (4, 0), f"LAP {k // fps + 1}  TIME {k / fps:05.2f}", fill=255, font=font
        )
        m = np.asarray(hud) > 127
        img[: m.shape[0]][m] = (255, 255, 255)
        return img

    return render


CLIPS: dict[str, Callable[[int, int, int], Callable[[int], np.ndarray]]] = {
    "tilemap": tilemap,
    "pan": pan,
}

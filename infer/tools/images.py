"""Image <-> NCHW float arrays for the command line (the engine itself knows no images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    img = Image.open(path).convert("L" if channels == 1 else "RGB")
    arr = np.asarray(img, np.float32) / 255.0
    arr = arr[..., None] if arr.ndim == 2 else arr
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])


def write_image(path: str | Path, nchw: np.ndarray) -> None:
    arr = np.clip(nchw[0].transpose(1, 2, 0), 0.0, 1.0)
    arr = (arr * 255.0 + 0.5).astype(np.uint8)
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr[..., :3]).save(path)


def test_frame(width: int = 320, height: int = 180, seed: int = 0) -> np.ndarray:
    """A small game-like frame (edges, text, gradient) for trying a model without an image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 9.0) * np.cos(yy / 7.0)], -1)
    img = Image.fromarray((base * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        w, h = int(rng.integers(8, 60)), int(rng.integers(8, 40))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=color, outline=(0, 0, 0))
        else:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=color)
    draw.rectangle([0, 0, width, 14], fill=(20, 20, 30))
    draw.text((4, 2), "HP 100  AMMO 42  SCORE 001337", fill=(240, 240, 80))
    arr = np.asarray(img, np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])

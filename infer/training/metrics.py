"""PSNR and SSIM on uint8 RGB frames, numpy only.

PSNR and SSIM are averaged over the three channels; `shave` leaves out a border (as is
customary for super-resolution). SSIM uses the usual 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03.
"""

from __future__ import annotations

import numpy as np


def _shave(a: np.ndarray, s: int) -> np.ndarray:
    return a[s:-s, s:-s] if s > 0 else a


def psnr(a: np.ndarray, b: np.ndarray, shave: int = 0) -> float:
    a = _shave(a, shave).astype(np.float64)
    b = _shave(b, shave).astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of a 2-D array with the 1-D kernel k (rows, then columns)."""
    n = len(k)
    h, w = img.shape
    rows = sum(k[i] * img[i : h - n + 1 + i, :] for i in range(n))
    return sum(k[j] * rows[:, j : w - n + 1 + j] for j in range(n))


def ssim(a: np.ndarray, b: np.ndarray, shave: int = 0) -> float:
    """Mean SSIM of two uint8 (h, w, 3) images, averaged over channels."""
    a = _shave(a, shave).astype(np.float64)
    b = _shave(b, shave).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = _gaussian()
    vals = []
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]
        mx, my = _filter_valid(x, k), _filter_valid(y, k)
        sxx = _filter_valid(x * x, k) - mx * mx
        syy = _filter_valid(y * y, k) - my * my
        sxy = _filter_valid(x * y, k) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        vals.append(float(m.mean()))
    return float(np.mean(vals))

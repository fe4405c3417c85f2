"""Consecutive frames with known motion, for the temporal-consistency training term.

An upscaler flickers when it does not commute with the motion in the picture: upscaling
frame t+1 gives something other than the upscaled frame t moved along with the content.
Eilertsen, Mantiuk and Unger ("Single-frame Regularization for Temporally Stable CNNs",
CVPR 2019) penalise exactly that on transformed copies of training frames; here the
transformed copy is the next frame of a training sequence from sequences.py (its own seed),
so the motion is the one the evaluation measures: a scrolling background (half-pixel steps of
the input, where upscalers shimmer), sprites moving on their own, a static HUD over moving
content (where a wide filter makes still text flicker). Only pixels whose source is visible
in both frames and inside the patch count (`mask`), as in temporal.warping_error.

Both frames of a pair are cut at the same even offset (their inputs are crops of the whole
degraded frames, as in the evaluation) and share flips and turns, the motion turning with them.
"""

from __future__ import annotations

import numpy as np

from .dataset import Degradation, to_nchw
from .sequences import draw_sequence


class PairPool:
    """`count` pairs of consecutive frames of `frame_size` (x2 upscaling only)."""

    def __init__(
        self, degradation: Degradation, count: int, frame_size: tuple[int, int], seed: int
    ) -> None:
        if degradation.scale != 2:
            raise ValueError("frame pairs are for x2 upscalers")
        rng = np.random.default_rng([seed, 2])
        h, w = frame_size[0] // 2 * 2, frame_size[1] // 2 * 2
        self.items: list[tuple[np.ndarray, ...]] = []
        for k in range(count):
            (t0, t1), (motion,), (valid,), _ = draw_sequence(rng, h, w, 2)
            name = degradation.downscale[k % len(degradation.downscale)]
            lr0, lr1 = (degradation.downscale_with(t, name) for t in (t0, t1))
            self.items.append((lr0, t0, lr1, t1, motion, valid))

    def __len__(self) -> int:
        return len(self.items)

    def batch(
        self,
        rng: np.random.Generator,
        pairs: int,
        patch: int,
        margin: int,
        static_weight: float = 1.0,
    ) -> tuple[np.ndarray, ...]:
        """(inputs t, targets t, inputs t+1, targets t+1, source, weight): for pixel q of a
        patch (flattened), output t+1 at q should equal output t at source[q] wherever
        weight[q] > 0 (the source is visible at t and both lie `margin` pixels inside the
        patch); pixels that do not move weigh `static_weight`, the others 1."""
        xa, ya, xb, yb, src, mask = [], [], [], [], [], []
        qy, qx = np.mgrid[0:patch, 0:patch]
        inner = (qy >= margin) & (qy < patch - margin) & (qx >= margin) & (qx < patch - margin)
        for _ in range(pairs):
            lr0, t0, lr1, t1, motion, valid = self.items[int(rng.integers(0, len(self.items)))]
            h, w = t0.shape[:2]
            y = 2 * int(rng.integers(0, (h - patch) // 2 + 1))
            x = 2 * int(rng.integers(0, (w - patch) // 2 + 1))
            cut = (slice(y, y + patch), slice(x, x + patch))
            low = (slice(y // 2, (y + patch) // 2), slice(x // 2, (x + patch) // 2))
            a, ta, b, tb = lr0[low], t0[cut], lr1[low], t1[cut]
            m, v = motion[cut], valid[cut]
            t = int(rng.integers(0, 8))
            if t & 1:
                a, ta, b, tb, m, v = (z[:, ::-1] for z in (a, ta, b, tb, m, v))
                m = m * np.array([1, -1])
            if t & 2:
                a, ta, b, tb, m, v = (z[::-1] for z in (a, ta, b, tb, m, v))
                m = m * np.array([-1, 1])
            if t & 4:
                a, ta, b, tb, m, v = (
                    z.transpose(1, 0, *range(2, z.ndim)) for z in (a, ta, b, tb, m, v)
                )
                m = m[..., ::-1]
            sy, sx = qy - m[..., 0], qx - m[..., 1]
            ok = v & inner & (sy >= margin) & (sy < patch - margin)
            ok &= (sx >= margin) & (sx < patch - margin)
            xa.append(a)
            ya.append(ta)
            xb.append(b)
            yb.append(tb)
            src.append((np.clip(sy, 0, patch - 1) * patch + np.clip(sx, 0, patch - 1)).ravel())
            still = ~m.any(axis=2)
            mask.append((ok * np.where(still, static_weight, 1.0)).ravel().astype(np.float32))
        return (
            to_nchw(np.stack(xa)),
            to_nchw(np.stack(ya)),
            to_nchw(np.stack(xb)),
            to_nchw(np.stack(yb)),
            np.stack(src).astype(np.int64),
            np.stack(mask),
        )

"""Patch pairs a few target pixels apart, for the temporal-consistency training term.

An upscaler that flickers is one that does not commute with motion: upscaling a frame moved
by one target pixel (half an input pixel) gives something other than the upscaled frame
moved by one pixel. Eilertsen, Mantiuk and Unger ("Single-frame Regularization for
Temporally Stable CNNs", CVPR 2019) showed that penalising exactly that on transformed copies
of single frames makes a CNN stable on video, with no video in training. Here the transform
is the one sequences.py measures: a shift by whole target pixels, odd along at least one axis.

For that, every training frame is degraded at its four sampling phases (the target cropped
at (0|1, 0|1)), so a patch can start at any target pixel, and a pair is two patches of the
same frame `shift` pixels apart, both degraded exactly as a sequence's frames are. The two
share the same flips and turns (the shift turns with them).
"""

from __future__ import annotations

import numpy as np

from .dataset import PatchPool, to_nchw

Phases = dict[tuple[int, int], np.ndarray]


class PairPool:
    """Shifted patch pairs over a PatchPool's frames (x2 upscaling only)."""

    def __init__(self, pool: PatchPool) -> None:
        if pool.deg.scale != 2:
            raise ValueError("patch pairs are for x2 upscalers")
        self.pool = pool
        self.phases: list[Phases] = []
        for hr, how in zip(pool.targets, pool.hows, strict=True):
            h, w = hr.shape[:2]
            name = how.split()[1]
            self.phases.append(
                {
                    (py, px): pool.deg.downscale_with(hr[py : py + h - 2, px : px + w - 2], name)
                    for py in (0, 1)
                    for px in (0, 1)
                }
            )

    def _patch(self, k: int, y: int, x: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
        """(input, target) of the target patch whose top-left is (y, x), any parity."""
        lr = self.phases[k][(y % 2, x % 2)]
        lp = patch // 2
        a = lr[y // 2 : y // 2 + lp, x // 2 : x // 2 + lp]
        return a, self.pool.targets[k][y : y + patch, x : x + patch]

    def batch(
        self, rng: np.random.Generator, pairs: int, patch: int, most: int = 1
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(inputs a, targets a, inputs b, targets b, shifts) for `pairs` pairs: patch b's
        target is patch a's moved by shifts[i] = (dy, dx), |dy|, |dx| <= most, one of them odd:
        target_b[q] = target_a[q + shift]."""
        xa, ya, xb, yb, shifts = [], [], [], [], []
        for _ in range(pairs):
            k = int(rng.integers(0, len(self.phases)))
            h, w = self.pool.targets[k].shape[:2]
            while True:
                dy, dx = (int(v) for v in rng.integers(-most, most + 1, size=2))
                if dy % 2 or dx % 2:
                    break
            # both patches inside the phase crops: top-left in [0, size - 2 - patch]
            y = int(rng.integers(max(0, -dy), h - 2 - patch - max(0, dy) + 1))
            x = int(rng.integers(max(0, -dx), w - 2 - patch - max(0, dx) + 1))
            a, ta = self._patch(k, y, x, patch)
            b, tb = self._patch(k, y + dy, x + dx, patch)
            t = int(rng.integers(0, 8))
            if t & 1:
                a, ta, b, tb, dx = a[:, ::-1], ta[:, ::-1], b[:, ::-1], tb[:, ::-1], -dx
            if t & 2:
                a, ta, b, tb, dy = a[::-1], ta[::-1], b[::-1], tb[::-1], -dy
            if t & 4:
                a, ta, b, tb = (v.transpose(1, 0, 2) for v in (a, ta, b, tb))
                dy, dx = dx, dy
            xa.append(a)
            ya.append(ta)
            xb.append(b)
            yb.append(tb)
            shifts.append((dy, dx))
        return (
            to_nchw(np.stack(xa)),
            to_nchw(np.stack(ya)),
            to_nchw(np.stack(xb)),
            to_nchw(np.stack(yb)),
            np.array(shifts, np.int64),
        )

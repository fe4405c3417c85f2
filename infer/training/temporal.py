"""Temporal stability of upscalers on sequences with known motion (sequences.py).

- Warping error: output t moved to t+1 with the true motion, against output t+1, over the
  pixels whose source is visible at t (uncovered pixels and pixels entering the view masked),
  the border shaved as for PSNR; RMS in 8-bit levels. It is E_warp of Lai et al., "Learning
  Blind Video Temporal Consistency" (ECCV 2018), with the true motion in place of optical
  flow, so it is exact: the ground truth scores 0 and so does a perfect upscaler; anything
  that crawls, shimmers or flickers under motion scores above 0.
- Flicker: mean absolute change of the output between consecutive frames over static pixels
  (no motion, not uncovered: the HUD, a still background), in 8-bit levels. They should not
  change at all; an upscaler whose window reaches moving content next to them makes them.
- Per-frame PSNR against the truth, for the figure of error over a sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .metrics import psnr
from .sequences import Sequence, warp

Upscaler = Callable[[np.ndarray], np.ndarray]  # uint8 (h, w, 3) -> uint8 (2h, 2w, 3)


def doubling(method: Callable[[np.ndarray, tuple[int, int]], np.ndarray]) -> Upscaler:
    """An evaluation method (input, target size) as an x2 upscaler."""
    return lambda x: method(x, (2 * x.shape[0], 2 * x.shape[1]))


def _shaved(mask: np.ndarray, shave: int) -> np.ndarray:
    if shave <= 0:
        return mask
    out = np.zeros_like(mask)
    out[shave:-shave, shave:-shave] = mask[shave:-shave, shave:-shave]
    return out


def warping_error(outputs: list[np.ndarray], seq: Sequence, shave: int = 2) -> list[float]:
    """Per transition t -> t+1: RMS (8-bit levels) of output t+1 - warp(output t), masked."""
    errs = []
    for t, (m, v) in enumerate(zip(seq.motion, seq.valid, strict=True)):
        mask = _shaved(v, shave)
        d = outputs[t + 1].astype(np.float64) - warp(outputs[t], m).astype(np.float64)
        errs.append(float(np.sqrt(np.mean(d[mask] ** 2))) if mask.any() else float("nan"))
    return errs


def flicker(outputs: list[np.ndarray], seq: Sequence, shave: int = 2) -> list[float]:
    """Per transition: mean |output t+1 - output t| (8-bit levels) over static pixels."""
    vals = []
    for t, still in enumerate(seq.static):
        mask = _shaved(still, shave)
        d = np.abs(outputs[t + 1].astype(np.float64) - outputs[t].astype(np.float64))
        vals.append(float(d[mask].mean()) if mask.any() else float("nan"))
    return vals


@dataclass
class TemporalScores:
    methods: list[str]
    warp: dict[str, list[float]]  # method -> per transition, sequences one after another
    flicker: dict[str, list[float]]
    psnr: dict[str, list[list[float]]]  # method -> per sequence -> per frame
    hows: list[str] = field(default_factory=list)  # per sequence
    frames: int = 0  # per sequence

    def mean_warp(self, m: str) -> float:
        return float(np.nanmean(self.warp[m]))

    def mean_flicker(self, m: str) -> float:
        return float(np.nanmean(self.flicker[m]))

    def mean_psnr(self, m: str) -> float:
        return float(np.mean([p for seq in self.psnr[m] for p in seq]))


def score_sequences(
    upscalers: dict[str, Upscaler], seqs: list[Sequence], shave: int = 2
) -> TemporalScores:
    """Every method on every frame of every sequence; warping error, flicker, PSNR."""
    methods = list(upscalers)
    out = TemporalScores(
        methods,
        {m: [] for m in methods},
        {m: [] for m in methods},
        {m: [] for m in methods},
        [s.how for s in seqs],
        len(seqs[0].targets) if seqs else 0,
    )
    for seq in seqs:
        for m, up in upscalers.items():
            outputs = [up(x) for x in seq.inputs]
            out.warp[m] += warping_error(outputs, seq, shave)
            out.flicker[m] += flicker(outputs, seq, shave)
            out.psnr[m].append(
                [psnr(o, t, shave) for o, t in zip(outputs, seq.targets, strict=True)]
            )
    return out


def temporal_table(ts: TemporalScores, baseline: str) -> list[str]:
    """Markdown rows: quality and temporal stability on the sequences, per method."""
    lines = [
        f"| method | PSNR on the sequences (dB) | warping error | vs {baseline} "
        f"| flicker (static pixels) | vs {baseline} |",
        "|---|---|---|---|---|---|",
    ]
    warp0, flicker0 = ts.mean_warp(baseline), ts.mean_flicker(baseline)
    for m in ts.methods:
        name = "**model**" if m == "model" else m
        lines.append(
            f"| {name} | {ts.mean_psnr(m):.2f} | {ts.mean_warp(m):.2f} | "
            f"{ts.mean_warp(m) / warp0:.2f}x | {ts.mean_flicker(m):.3f} | "
            f"{ts.mean_flicker(m) / flicker0:.2f}x |"
        )
    return lines


def write_figure(ts: TemporalScores, path: str | Path, seq: int = 0) -> Path | None:
    """Per-frame PSNR and per-transition warping error over one sequence, every method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    n = ts.frames
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    for m in ts.methods:
        style = {"linewidth": 2.2} if m == "model" else {"linewidth": 1.2}
        top.plot(range(n), ts.psnr[m][seq], marker="o", markersize=3, label=m, **style)
        warp_seq = ts.warp[m][seq * (n - 1) : (seq + 1) * (n - 1)]
        bottom.plot(range(1, n), warp_seq, marker="o", markersize=3, label=m, **style)
    top.set_ylabel("PSNR vs truth (dB)")
    top.set_title(f"held-out sequence {seq}: {ts.hows[seq]}", fontsize=9)
    top.legend(fontsize=7, ncol=3)
    bottom.set_ylabel("warping error t-1 -> t\n(RMS, 8-bit levels)")
    bottom.set_xlabel("frame t")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

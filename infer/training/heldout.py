"""Everything measured on held-out data for one exported model: PSNR/SSIM on frames, the
temporal measures on sequences, the cost per frame of every method, and the gate's verdict
on them. Shared by training runs (cli.run_pipeline) and `--evaluate` of an existing model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import evaluate as ev
from . import temporal as tm
from .config import Config
from .dataset import EvalFrame, held_out
from .export import DeployGateError, Parity, check_gate
from .sequences import held_out_sequences
from .train import degradation


@dataclass
class HeldOut:
    frames: list[EvalFrame]
    compare: dict[str, Path]  # eval.compare, by file name
    scores: ev.Scores
    costs: dict[str, float]  # method -> operations per 1080p output frame
    temporal: tm.TemporalScores | None  # upscalers with eval.sequences > 0

    def gate_error(self, cfg: Config, parity: Parity | None) -> DeployGateError | None:
        t = self.temporal
        try:
            check_gate(
                parity,
                self.scores.gain_db,
                self.scores.baseline,
                cfg.gate,
                psnr={m: self.scores.mean_psnr(m) for m in self.scores.methods},
                warp={m: t.mean_warp(m) for m in t.methods} if t else None,
                flicker={m: t.mean_flicker(m) for m in t.methods} if t else None,
                compare=tuple(self.compare),
            )
        except DeployGateError as e:
            return e
        return None

    def summary(self) -> dict:
        s, t = self.scores, self.temporal
        return {
            "psnr": {m: s.mean_psnr(m) for m in s.methods},
            "ssim": {m: s.mean_ssim(m) for m in s.methods},
            "gain_db": s.gain_db,
            "gflops_1080p_by_method": {m: c / 1e9 for m, c in self.costs.items()},
            "sequences": None
            if t is None
            else {
                "psnr": {m: t.mean_psnr(m) for m in t.methods},
                "warping_error": {m: t.mean_warp(m) for m in t.methods},
                "flicker": {m: t.mean_flicker(m) for m in t.methods},
            },
        }

    def figures(self, cfg: Config, run_dir: Path, stem: str) -> tuple[Path | None, Path | None]:
        """The crops figure and the per-frame error over a sequence, if matplotlib is there."""
        if not cfg.eval.figure:
            return None, None
        fig = ev.write_figure(self.scores, self.frames, run_dir / f"{stem}.png")
        tfig = None
        if self.temporal is not None:
            tfig = tm.write_figure(self.temporal, run_dir / f"{stem}.temporal.png")
        return fig, tfig


def assess(cfg: Config, onnx_path: str | Path, say: Callable[[str], object] = print) -> HeldOut:
    """Run the model, the classic methods and eval.compare's models on the held-out frames
    and (upscalers) sequences of `cfg.eval`."""
    e = cfg.eval
    frames = held_out(degradation(cfg), e.frames, e.size, e.seed)
    compare = ev.resolve_models(e.compare)
    scores = ev.score(cfg.task, onnx_path, frames, compare)
    costs = ev.method_costs(cfg.task, onnx_path, compare)
    temporal = None
    if cfg.task == "upscale" and e.sequences > 0:
        seqs = held_out_sequences(
            degradation(cfg), e.sequences, e.sequence_frames, e.size, e.sequence_seed
        )
        runs = ev.methods(cfg.task, onnx_path, compare)
        temporal = tm.score_sequences({m: tm.doubling(r) for m, r in runs.items()}, seqs)
        say(
            "held-out sequences, warping error: "
            + ", ".join(f"{m} {temporal.mean_warp(m):.2f}" for m in temporal.methods)
        )
    say(f"held-out PSNR gain over {scores.baseline}: {scores.gain_db:+.2f} dB")
    return HeldOut(frames, compare, scores, costs, temporal)

"""The training loop: Adam, L1 loss, cosine learning rate, checkpoints, seeded and deterministic.

A run stops at `train.steps` or after `train.seconds` of wall time, whichever comes first
(a step budget is reproducible bit for bit on CPU; a time budget is not, by nature).
Checkpoints hold the model, the optimiser, the step, the elapsed time and every random
generator's state, so `resume=True` continues a run exactly where it stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .config import Config, ConfigError
from .dataset import Degradation, PatchPool
from .models import build_model, deepen_from, load_init, narrow_from
from .pairs import PairPool

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainResult:
    model: nn.Module
    steps: int
    seconds: float  # wall time spent training, over all resumed pieces
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss since last)
    resumed_from: int = 0

    @property
    def final_loss(self) -> float:
        return self.losses[-1][1] if self.losses else float("nan")


def degradation(cfg: Config) -> Degradation:
    d = cfg.data
    return Degradation(
        task=cfg.task,
        downscale=tuple(d.downscale),
        noise_sigma=d.noise_sigma,
        jpeg_quality=d.jpeg_quality,
        jpeg_fraction=d.jpeg_fraction,
    )


def make_model(cfg: Config) -> nn.Module:
    m = cfg.model
    return build_model(
        m.arch,
        features=m.features,
        mid_features=m.mid_features,
        extra_convs=m.extra_convs,
        num_conv=m.num_conv,
        activation=m.activation,
        base=m.base,
    )


def warp_consistency(
    out_a: torch.Tensor, out_b: torch.Tensor, source: np.ndarray, mask: np.ndarray
) -> torch.Tensor:
    """Mean squared difference between output t+1 and output t moved by the true motion
    (pixel q of out_b against pixel source[q] of out_a, both flattened) where `mask`: the
    warping error of temporal.py as a loss. Zero for an upscaler that moves with the content,
    as the ground truth does (pairs.py)."""
    n, c = out_a.shape[:2]
    flat_a = out_a.reshape(n, c, -1)
    idx = torch.from_numpy(source)[:, None, :].expand(n, c, source.shape[1])
    keep = torch.from_numpy(mask)[:, None, :].to(out_a.dtype)  # per-pixel weights
    d = (out_b.reshape(n, c, -1) - flat_a.gather(2, idx)) * keep
    return (d * d).sum() / (keep.sum() * c).clamp(min=1.0)


def seed_everything(seed: int, threads: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True)


def _lr(cfg: Config, step: int, elapsed: float) -> float:
    t = cfg.train
    progress = 0.0
    if t.steps > 0:
        progress = step / t.steps
    if t.seconds > 0:
        progress = max(progress, elapsed / t.seconds)
    progress = min(progress, 1.0)
    return t.lr_min + 0.5 * (t.lr - t.lr_min) * (1.0 + math.cos(math.pi * progress))


def train(
    cfg: Config,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    run_dir = Path(run_dir or cfg.run_dir())
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT
    seed_everything(cfg.seed, cfg.train.threads)

    # with the temporal term every patch of a batch comes from the pairs of frames
    pool, pairs = None, None
    if cfg.train.temporal_weight > 0:
        pairs = PairPool(
            degradation(cfg), cfg.train.temporal_sequences, cfg.data.frame_size, cfg.seed
        )
    else:
        pool = PatchPool(
            degradation(cfg),
            cfg.data.frames,
            cfg.data.frame_size,
            seed=cfg.seed,
            use_package_images=cfg.data.package_images,
        )
    model = make_model(cfg)
    if cfg.model.init and not (resume and ckpt_path.is_file()):
        init = Path(cfg.model.init)
        if not init.is_file():
            raise ConfigError(f"model.init {init} not found: train the model it starts from first")
        try:
            state = load_init(init)
            first = state.get("body.0.weight")
            if first is not None and first.shape[0] > cfg.model.features:
                narrow_from(model, state)  # a wider trained model: prune it
            else:
                deepen_from(model, state)
        except ValueError as e:
            raise ConfigError(f"model.init {init}: {e}") from None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    rng = np.random.default_rng([cfg.seed, 1])
    step, elapsed, losses, resumed_from = 0, 0.0, [], 0

    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        step, elapsed, losses = state["step"], state["seconds"], list(state["losses"])
        resumed_from = step

    def save() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "seconds": elapsed,
                "losses": losses,
                "config": cfg.to_dict(),
            },
            tmp,
        )
        tmp.replace(ckpt_path)

    t = cfg.train
    total = t.steps if t.steps > 0 else None
    bar = tqdm(
        total=total,
        initial=step,
        desc=f"train {cfg.name}",
        disable=not progress,
        dynamic_ncols=True,
        leave=True,
    )
    model.train()
    running, count = 0.0, 0
    start = time.perf_counter() - elapsed

    def budget_left() -> bool:
        if t.steps > 0 and step >= t.steps:
            return False
        return not (t.seconds > 0 and elapsed >= t.seconds)

    loss_fn = torch.nn.functional.mse_loss if t.loss == "mse" else torch.nn.functional.l1_loss
    while budget_left():
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step, elapsed)
        if pool is not None:
            x, y = pool.batch(rng, cfg.data.batch, cfg.data.patch)
            pred = model(torch.from_numpy(x))
            loss = loss_fn(pred, torch.from_numpy(y))
        elif pairs is not None:  # the same number of patches, as pairs: no extra cost per step
            xa, ya, xb, yb, source, mask = pairs.batch(
                rng,
                cfg.data.batch // 2,
                cfg.data.patch,
                t.temporal_margin,
                t.temporal_static_weight,
            )
            n = len(xa)
            pred = model(torch.from_numpy(np.concatenate([xa, xb])))
            loss = loss_fn(pred, torch.from_numpy(np.concatenate([ya, yb])))
            consistency = warp_consistency(pred[:n], pred[n:], source, mask)
            loss = loss + t.temporal_weight * consistency
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        elapsed = time.perf_counter() - start
        running += float(loss.detach())
        count += 1
        if step % t.log_every == 0 or not budget_left():
            losses.append((step, running / count))
            bar.set_postfix(loss=f"{running / count:.4f}", lr=f"{_lr(cfg, step, elapsed):.1e}")
            running, count = 0.0, 0
        if step % t.checkpoint_every == 0:
            save()
        bar.update(1)
    bar.close()
    save()
    model.eval()
    return TrainResult(model, step, elapsed, losses, resumed_from)

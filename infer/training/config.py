"""Training configuration from TOML. Every key has a default; unknown keys are refused, named.

See configs/train-upscale.toml for every key, documented.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARCHS = ("espcn", "srvgg", "denoise")
BASES = ("nearest", "bilinear", "bicubic", "none")
ACTIVATIONS = ("relu", "prelu", "tanh")


class ConfigError(ValueError):
    """A bad training configuration; the message names the key."""


@dataclass
class DataConfig:
    frames: int = 192  # training frames generated (patches are cut from them)
    frame_size: tuple[int, int] = (192, 192)  # training frame (target) size, [height, width]
    patch: int = 64  # target patch size (inputs are patch/2 for x2 upscaling)
    batch: int = 16
    downscale: tuple[str, ...] = ("bicubic", "area")  # upscale: PIL filters used to make inputs
    noise_sigma: tuple[float, float] = (5.0, 30.0)  # denoise: Gaussian sigma range, 0..255
    jpeg_quality: tuple[int, int] = (20, 60)  # denoise: PIL JPEG quality range
    jpeg_fraction: float = 0.5  # denoise: share of JPEG (vs Gaussian) inputs
    package_images: bool = False  # add sample photos from installed packages, if any


@dataclass
class ModelConfig:
    arch: str = "espcn"  # espcn | srvgg | denoise
    features: int = 48  # width of the first conv (espcn) or of every conv (srvgg, denoise)
    mid_features: int = 32  # espcn: width of the last hidden conv
    extra_convs: int = 0  # espcn: conv3x3 features -> features layers after the first conv
    num_conv: int = 6  # srvgg: body convs after the first; denoise: all convs
    activation: str = "tanh"  # relu | prelu | tanh
    base: str = "bicubic"  # upscalers: nearest | bilinear | bicubic | none (upsampled input)
    # espcn: a trained run's checkpoint.pt or an .onnx to start from: a shallower one is
    # deepened (Net2Net), a wider one narrowed (its weightiest channels kept)
    init: str = ""


@dataclass
class TrainConfig:
    steps: int = 2000  # stop after this many steps...
    seconds: float = 0.0  # ...or after this much wall time (0: no time limit)
    loss: str = "l1"  # l1 | mse (mse optimises PSNR directly; see configs/train-upscale.toml)
    lr: float = 1e-3  # Adam learning rate, cosine-decayed to lr_min over the budget
    lr_min: float = 1e-5
    threads: int = 1  # torch.set_num_threads
    checkpoint_every: int = 200  # steps between checkpoints (and one at the end)
    # temporal consistency (upscale, pairs.py): batches become batch/2 pairs of consecutive
    # frames of training sequences, and weight * MSE(out_t+1, out_t moved by the true motion)
    # over the pixels seen in both joins the loss
    temporal_weight: float = 0.0
    temporal_sequences: int = 256  # training pairs of frames (data.frame_size, own seed)
    temporal_margin: int = 8  # target pixels left out at the patch border (padding effects)
    temporal_static_weight: float = 1.0  # weight of pixels that do not move (HUD over motion)
    log_every: int = 25  # steps between loss records


@dataclass
class EvalConfig:
    frames: int = 8  # held-out frames
    size: tuple[int, int] = (216, 384)  # held-out frame (target) size, [height, width]
    seed: int = 1_000_003  # held-out frames' seed (never the training seed)
    bench_size: tuple[int, int] = (90, 160)  # input size for the time-per-frame measurement
    bench_runs: int = 5
    figure: bool = True  # write the crops figure (needs matplotlib)
    compare: tuple[str, ...] = ()  # other models (files or bundled names) in the tables
    sequences: int = 6  # upscale: held-out sequences with known motion (0: none)
    sequence_frames: int = 12  # frames per sequence
    sequence_seed: int = 2_000_003  # their seed (never the training seed)


@dataclass
class GateConfig:
    parity_tol: float = 1e-4  # max |engine - onnxruntime| / max |onnxruntime|
    parity_size: tuple[int, int] = (37, 53)  # odd input size for the parity check
    min_gain_db: float = 0.0  # PSNR over bicubic (upscale) or the noisy input (denoise)
    beat: tuple[str, ...] = ()  # methods to beat on PSNR and warping error ("edge")
    max_flicker_vs_bicubic: float = 0.0  # flicker at most this times bicubic's (0: no check)
    min_gain_over_compare_db: float = 0.0  # PSNR over each model in eval.compare
    engine: bool = True  # check parity with infer.load (needs a GPU adapter; lavapipe counts)


@dataclass
class OutputConfig:
    dir: str = ""  # run directory (checkpoint, model, report); default artifacts/train/<name>
    deploy_dir: str = ""  # if set, a model passing the gate is copied here with its card


@dataclass
class Config:
    name: str = "upscale"  # file stem of the exported model and its card
    task: str = "upscale"  # upscale (x2) | denoise
    seed: int = 0
    description: str = ""  # one line for the model card
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def run_dir(self) -> Path:
        return Path(self.output.dir or f"artifacts/train/{self.name}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(key: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, not {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, not {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, not {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, not {value!r}")
        if default and len(value) != len(default) and not isinstance(default[0], str):
            raise ConfigError(f"{key} must have {len(default)} items, not {len(value)}")
        if default:
            return tuple(_coerce(f"{key}[{k}]", default[0], v) for k, v in enumerate(value))
        return tuple(value)
    raise ConfigError(f"{key}: unsupported value {value!r}")


def _fill(obj: Any, table: dict[str, Any], prefix: str) -> None:
    known = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in table.items():
        full = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(
                f"unknown key {full!r} in training config (known here: {', '.join(known)})"
            )
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{full} must be a table, not {value!r}")
            _fill(current, value, f"{full}.")
        else:
            setattr(obj, key, _coerce(full, current, value))


def _check(cfg: Config) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ConfigError(msg)

    need(cfg.task in ("upscale", "denoise"), f"task must be upscale or denoise, not {cfg.task!r}")
    need(cfg.model.arch in ARCHS, f"model.arch must be one of {ARCHS}, not {cfg.model.arch!r}")
    need(
        (cfg.model.arch == "denoise") == (cfg.task == "denoise"),
        f"model.arch {cfg.model.arch!r} does not fit task {cfg.task!r}",
    )
    need(cfg.model.base in BASES, f"model.base must be one of {BASES}")
    need(cfg.model.activation in ACTIVATIONS, f"model.activation must be one of {ACTIVATIONS}")
    need(cfg.data.patch >= 8 and cfg.data.patch % 2 == 0, "data.patch must be even and >= 8")
    need(
        min(cfg.data.frame_size) >= cfg.data.patch,
        "data.frame_size must be at least data.patch on each side",
    )
    need(cfg.data.frames >= 1 and cfg.data.batch >= 1, "data.frames and data.batch must be >= 1")
    need(cfg.train.loss in ("l1", "mse"), f"train.loss must be l1 or mse, not {cfg.train.loss!r}")
    need(cfg.train.steps >= 1 or cfg.train.seconds > 0, "train.steps or train.seconds needed")
    need(cfg.name.replace("-", "").replace("_", "").isalnum(), "name must be a plain file stem")
    names = (*cfg.eval.compare, *cfg.gate.beat)
    need(all(isinstance(n, str) for n in names), "eval.compare and gate.beat hold names")
    need(cfg.eval.sequences >= 0 and cfg.eval.sequence_frames >= 2, "eval.sequence_frames >= 2")
    t = cfg.train
    need(t.temporal_weight >= 0, "train.temporal_weight must be >= 0")
    if t.temporal_weight > 0:
        need(cfg.task == "upscale", "train.temporal_weight is for upscalers (task upscale)")
        need(cfg.data.batch >= 2, "train.temporal_weight needs data.batch >= 2 (pairs)")
        need(t.temporal_sequences >= 1, "train.temporal_sequences must be >= 1")
        need(
            cfg.data.patch > 2 * (t.temporal_margin + 4),  # sprites move up to 4 px a frame
            "data.patch must exceed 2 * (train.temporal_margin + 4)",
        )


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Config from a TOML file (or defaults), with `overrides` (same nesting) on top."""
    cfg = Config()
    if path is not None:
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: {e}") from None
        try:
            _fill(cfg, table, "")
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    if overrides:
        _fill(cfg, overrides, "")
    _check(cfg)
    return cfg

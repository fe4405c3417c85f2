"""Held-out evaluation: PSNR / SSIM against baselines, cost, speed, report, figure, model card.

PSNR and SSIM (metrics.py) are measured on uint8 RGB frames (outputs rounded and clipped, as
they would be displayed). Upscaler scores shave a border of `scale` pixels on every side (as
is customary for super-resolution). Upscalers are compared with bilinear and bicubic (PIL),
the edge-adaptive classic scaler the pipeline's `edge` mode runs (edge_adaptive.py: FSR 1's
EASU + RCAS) and any models named in eval.compare; temporal.py adds their stability on
sequences with known motion, costs.py their cost per 1080p frame.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .config import Config
from .costs import classic_flops, onnx_flops
from .dataset import EvalFrame, resize_baseline, to_nchw, to_uint8
from .edge_adaptive import edge_upscale
from .export import INPUT, Parity, ort_session
from .metrics import psnr, ssim
from .temporal import TemporalScores, temporal_table

__all__ = ["Scores", "methods", "psnr", "score", "ssim", "timings"]

Method = Callable[[np.ndarray, tuple[int, int]], np.ndarray]  # (input, target h w) -> output

# ---- scoring ---------------------------------------------------------------------------


@dataclass
class Scores:
    task: str
    baseline: str  # the method the model must beat
    methods: list[str]
    psnr: dict[str, list[float]]  # method -> per-frame PSNR
    ssim: dict[str, list[float]]
    images: dict[str, list[np.ndarray]]  # method -> per-frame uint8 outputs
    hows: list[str] = field(default_factory=list)  # per-frame degradation

    def mean_psnr(self, m: str) -> float:
        return float(np.mean(self.psnr[m]))

    def mean_ssim(self, m: str) -> float:
        return float(np.mean(self.ssim[m]))

    @property
    def gain_db(self) -> float:
        return self.mean_psnr("model") - self.mean_psnr(self.baseline)


def onnx_method(path: str | Path) -> Method:
    """An ONNX model run by onnxruntime on CPU (the reference the engine is held to)."""
    sess = ort_session(path)

    def run(x: np.ndarray, _size: tuple[int, int]) -> np.ndarray:
        return to_uint8(sess.run(None, {INPUT: to_nchw(x)})[0])

    return run


def _median3(x: np.ndarray, _size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(x).filter(ImageFilter.MedianFilter(3)), np.uint8)


def resolve_models(names: tuple[str, ...]) -> dict[str, Path]:
    """eval.compare: files, or bundled models by name; keyed by file name."""
    from ..bundled import resolve_model

    paths = [resolve_model(n) for n in names]
    return {p.name: p for p in paths}


def method_costs(
    task: str, onnx_path: str | Path, compare: dict[str, Path] | None = None
) -> dict[str, float]:
    """Operations per 1080p output frame of every method that has a cost (costs.py), every
    model counted the same way from its ONNX graph."""
    scale = 2 if task == "upscale" else 1
    out = {m: classic_flops(m) for m in ("bilinear", "bicubic", "edge")} if scale == 2 else {}
    out.update({name: onnx_flops(p, scale) for name, p in (compare or {}).items()})
    out["model"] = onnx_flops(onnx_path, scale)
    return out


def methods(
    task: str, onnx_path: str | Path, compare: dict[str, Path] | None = None
) -> dict[str, Method]:
    """Every method of the table, in order, the model last: the classic ones, then the
    models in `compare` (name -> ONNX file), then the model itself."""
    out: dict[str, Method] = {}
    if task == "upscale":
        out["bilinear"] = lambda x, size: resize_baseline(x, size, "bilinear")
        out["bicubic"] = lambda x, size: resize_baseline(x, size, "bicubic")
        out["edge"] = edge_upscale
    else:
        out["input"] = lambda x, _size: x
        out["median3"] = _median3
    for name, path in (compare or {}).items():
        out[name] = onnx_method(path)
    out["model"] = onnx_method(onnx_path)
    return out


def score(
    task: str,
    onnx_path: str | Path,
    frames: list[EvalFrame],
    compare: dict[str, Path] | None = None,
) -> Scores:
    """Run the exported model (onnxruntime CPU), the baselines and the models to compare
    with on held-out frames."""
    baseline, shave = ("bicubic", 2) if task == "upscale" else ("input", 0)
    runs = methods(task, onnx_path, compare)
    images = {m: [run(f.input, f.target.shape[:2]) for f in frames] for m, run in runs.items()}
    targets = [f.target for f in frames]
    p = {m: [psnr(o, t, shave) for o, t in zip(images[m], targets, strict=True)] for m in runs}
    s = {m: [ssim(o, t, shave) for o, t in zip(images[m], targets, strict=True)] for m in runs}
    return Scores(task, baseline, list(runs), p, s, images, [f.how for f in frames])


# ---- speed -----------------------------------------------------------------------------


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up (the engine compiles its shaders here)
    times = []
    for _ in range(max(runs, 1)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def timings(onnx_path: str | Path, size: tuple[int, int], runs: int) -> dict:
    """Median ms per frame at input `size` (h, w): the engine and onnxruntime CPU (1 thread)."""
    x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    out: dict = {"size": f"{size[1]}x{size[0]}"}
    sess = ort_session(onnx_path)
    out["onnxruntime_cpu_ms"] = _median_ms(lambda: sess.run(None, {INPUT: x}), runs)
    try:
        import infer

        model = infer.load(str(onnx_path))
        out["engine_ms"] = _median_ms(lambda: model.run(x), runs)
        out["engine_device"] = model.device.name
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        out["engine_error"] = f"{type(e).__name__}: {e}"
    return out


# ---- figure, report, card --------------------------------------------------------------


def _crop_box(ref: np.ndarray, base: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left of the size x size crop where the baseline is worst (most to see)."""
    err = np.abs(ref.astype(np.float32) - base.astype(np.float32)).sum(axis=2)
    h, w = err.shape
    size = min(size, h, w)
    step = max(size // 4, 1)
    best, at = -1.0, (0, 0)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            e = float(err[y : y + size, x : x + size].sum())
            if e > best:
                best, at = e, (y, x)
    return at


def write_figure(
    scores: Scores, frames: list[EvalFrame], path: str | Path, n: int = 3, crop: int = 96
) -> Path | None:
    """Crops side by side (baseline | model | ground truth) of the first n frames."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    n = min(n, len(frames))
    cols = [scores.baseline, "model", "truth"]
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for r in range(n):
        ref = frames[r].target
        base = scores.images[scores.baseline][r]
        y, x = _crop_box(ref, base, crop)
        c = min(crop, *ref.shape[:2])
        for k, name in enumerate(cols):
            img = ref if name == "truth" else scores.images[name][r]
            ax = axes[r][k]
            ax.imshow(img[y : y + c, x : x + c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if name == "truth":
                ax.set_title("ground truth", fontsize=9)
            else:
                label = "bicubic" if name == "bicubic" else name
                if name == "input":
                    label = f"input ({frames[r].how})"
                ax.set_title(f"{label}: {scores.psnr[name][r]:.2f} dB", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _fmt_flops(f: float) -> str:
    return f"{f / 1e9:.1f} GFLOP"


def _metrics_table(
    scores: Scores, costs: dict[str, float], temporal: TemporalScores | None = None
) -> list[str]:
    head = f"| method | PSNR (dB) | SSIM | gain over {scores.baseline} | GFLOP / 1080p |"
    if temporal is not None:
        head += " warping error | flicker |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    base = scores.mean_psnr(scores.baseline)
    for m in scores.methods:
        name = "**model**" if m == "model" else m
        cost = costs.get(m)
        row = (
            f"| {name} | {scores.mean_psnr(m):.2f} | {scores.mean_ssim(m):.4f} | "
            f"{scores.mean_psnr(m) - base:+.2f} dB | "
            f"{'-' if cost is None else f'{cost / 1e9:.2f}'} |"
        )
        if temporal is not None:
            row += f" {temporal.mean_warp(m):.2f} | {temporal.mean_flicker(m):.3f} |"
        lines.append(row)
    return lines


TEMPORAL_NOTE = (
    "Warping error: output frame t moved to t+1 with the true motion, against output t+1, "
    "RMS in 8-bit levels over the pixels visible in both (occlusions masked); the ground "
    "truth scores 0. Flicker: mean |change| between consecutive outputs over pixels that "
    "do not move (HUD, still backgrounds), 8-bit levels; the truth scores 0. Both lower is "
    "better (infer/training/temporal.py)."
)


def _temporal_section(
    cfg: Config, temporal: TemporalScores, figure: str | None, per_sequence: bool
) -> list[str]:
    e = cfg.eval
    out = [
        "",
        "## Temporal stability",
        "",
        f"{len(temporal.hows)} held-out sequences of {temporal.frames} frames of "
        f"{e.size[1]}x{e.size[0]} (seed {e.sequence_seed}) with exactly known motion: "
        "scrolling backgrounds, sprites, a static HUD (infer/training/sequences.py).",
        "",
        *temporal_table(temporal, "bicubic"),
        "",
        TEMPORAL_NOTE,
    ]
    if per_sequence:
        out += ["", "| sequence | content | " + " | ".join(temporal.methods) + " |"]
        out.append("|---" * (len(temporal.methods) + 2) + "|")
        n = temporal.frames - 1
        for k, how in enumerate(temporal.hows):
            vals = " | ".join(
                f"{float(np.mean(temporal.warp[m][k * n : (k + 1) * n])):.2f}"
                for m in temporal.methods
            )
            out.append(f"| {k} | {how} | {vals} |")
        out += ["", "(warping error per sequence)"]
    if figure:
        out += ["", f"![per-frame PSNR and warping error over sequence 0]({figure})"]
    return out


def evaluation_markdown(
    cfg: Config,
    model: str,
    scores: Scores,
    costs: dict[str, float],
    temporal: TemporalScores | None,
    figures: tuple[str | None, str | None],
    gate: str,
) -> str:
    """The report of `--evaluate`: an existing model on the held-out data of a config."""
    e = cfg.eval
    out = [
        f"# Evaluation: {model}",
        "",
        f"Held-out data of the {cfg.name} configuration: {len(scores.hows)} frames of "
        f"{e.size[1]}x{e.size[0]} (seed {e.seed}); `model` is {model}. The deploy gate of that "
        f"configuration would say: {gate}.",
        "",
        "## Held-out quality",
        "",
        *_metrics_table(scores, costs, temporal),
    ]
    if temporal is not None:
        out += _temporal_section(cfg, temporal, figures[1], True)
    if figures[0]:
        out += ["", f"![crops: {scores.baseline} | model | ground truth]({figures[0]})"]
    return "\n".join(out) + "\n"


def report_markdown(
    cfg: Config,
    scores: Scores,
    info: dict,
    parity: Parity | None,
    speed: dict,
    figure: str | None,
    *,
    costs: dict[str, float] | None = None,
    temporal: TemporalScores | None = None,
    temporal_figure: str | None = None,
) -> str:
    out = [f"# Training report: {cfg.name}", ""]
    out += [
        f"- task: {cfg.task} (x{2 if cfg.task == 'upscale' else 1}), arch {cfg.model.arch}",
        f"- params: {info['params']:,}; FLOPs per 1080p output frame: "
        f"{_fmt_flops(info['flops']['total'])} (conv {_fmt_flops(info['flops']['conv'])})",
        f"- training: {info['steps']} steps in {info['seconds']:.0f} s "
        f"(batch {cfg.data.batch}, patch {cfg.data.patch}, {cfg.train.threads} thread), "
        f"{cfg.train.loss.upper()} loss, final {info['final_loss']:.5f}",
        f"- held-out: {len(scores.hows)} frames of {cfg.eval.size[1]}x{cfg.eval.size[0]}, "
        f"seed {cfg.eval.seed}",
    ]
    if parity is not None:
        out.append(
            f"- engine parity on {parity.shape}: rel err {parity.rel:.2e} "
            f"({'ok' if parity.ok else 'FAILED ' + parity.error})"
        )
    out += ["", "## Held-out quality", ""] + _metrics_table(scores, costs or {}, temporal)
    if temporal is not None:
        out += _temporal_section(cfg, temporal, temporal_figure, True)
    out += ["", "## Per frame (PSNR dB)", ""]
    out.append("| frame | degradation | " + " | ".join(scores.methods) + " |")
    out.append("|---" * (len(scores.methods) + 2) + "|")
    for k, how in enumerate(scores.hows):
        vals = " | ".join(f"{scores.psnr[m][k]:.2f}" for m in scores.methods)
        out.append(f"| {k} | {how} | {vals} |")
    out += ["", "## Speed", ""]
    out.append(f"Input {speed.get('size')}, median of {cfg.eval.bench_runs} runs:")
    out.append("")
    out.append(
        f"- onnxruntime CPU (1 thread): {speed.get('onnxruntime_cpu_ms', float('nan')):.1f} ms"
    )
    if "engine_ms" in speed:
        out.append(f"- framesmith engine on {speed['engine_device']}: {speed['engine_ms']:.1f} ms")
    else:
        out.append(f"- framesmith engine: not measured ({speed.get('engine_error', '')})")
    if figure:
        out += ["", f"![crops: {scores.baseline} | model | ground truth]({figure})"]
    return "\n".join(out) + "\n"


def model_card(
    cfg: Config,
    scores: Scores,
    info: dict,
    parity: Parity | None,
    speed: dict,
    figure: str | None,
    *,
    costs: dict[str, float] | None = None,
    temporal: TemporalScores | None = None,
    temporal_figure: str | None = None,
) -> str:
    scale = 2 if cfg.task == "upscale" else 1
    what = (
        "x2 upscaler (NCHW float32 RGB in [0, 1], output twice the height and width)"
        if cfg.task == "upscale"
        else "denoiser for Gaussian noise and JPEG artefacts (same size in and out)"
    )
    m = cfg.model
    arch = {
        "espcn": f"ESPCN-style: conv5x5 3->{m.features}, "
        + (f"{m.extra_convs} conv3x3 {m.features}->{m.features}, " if m.extra_convs else "")
        + f"conv3x3 ->{m.mid_features}, "
        f"conv3x3 ->12, PixelShuffle(2), {m.activation}; plus a {m.base} upsampled base",
        "srvgg": f"SRVGGNetCompact-style: {m.num_conv + 2} conv3x3 of {m.features} channels "
        f"with {m.activation}, PixelShuffle(2); plus a {m.base} upsampled base",
        "denoise": f"DnCNN-style residual: {m.num_conv} conv3x3 of {m.features} channels, "
        f"{m.activation}, no BatchNorm; output = input - predicted noise",
    }[m.arch]
    d = cfg.data
    if cfg.task == "upscale":
        degr = f"x2 downscale by PIL {' / '.join(d.downscale)} (area = box)"
    else:
        degr = (
            f"Gaussian noise sigma {d.noise_sigma[0]:g}-{d.noise_sigma[1]:g} (of 255) or "
            f"PIL JPEG quality {d.jpeg_quality[0]}-{d.jpeg_quality[1]} "
            f"({d.jpeg_fraction:.0%} JPEG)"
        )
    out = [f"# {cfg.name}.onnx", ""]
    if cfg.description:
        out += [cfg.description, ""]
    out += [
        f"A {what}. Bundled with framesmith; trained, exported and gated by "
        f"`python -m infer train --config configs/train-{cfg.name}.toml`. Every figure "
        "below was measured by that run (this card is generated).",
        "",
        "## Model",
        "",
        f"- architecture: {arch}",
        "- ONNX opset 17, dynamic batch/height/width; ops: "
        + ", ".join(sorted(info.get("ops", []))),
        f"- parameters: {info['params']:,}",
        f"- cost: {_fmt_flops(info['flops']['total'])} per 1080p output frame "
        f"(input {1920 // scale}x{1080 // scale}); convolutions "
        f"{_fmt_flops(info['flops']['conv'])}",
        "",
        "## Data",
        "",
        "- synthetic game-like frames generated by this project (infer/training/dataset.py): "
        "gradients, tiled textures (checker, stripes, blocky noise, bricks), hard-edged shapes, "
        "pixel-art sprites, thin lines, HUD bars and text (PIL's default font)",
        "- licence of the data: generated by this project, MIT"
        + (
            "; plus sample photos shipped with installed packages"
            if d.package_images
            else "; no third-party images"
        ),
        _training_data(cfg),
        f"- degradation: {degr}",
        f"- held-out: {len(scores.hows)} frames of {cfg.eval.size[1]}x{cfg.eval.size[0]} "
        f"from a different seed ({cfg.eval.seed})",
        "",
        "## Training budget",
        "",
        f"- {info['steps']} steps of Adam (lr {cfg.train.lr:g} cosine to {cfg.train.lr_min:g}), "
        f"{cfg.train.loss.upper()} loss, batch {d.batch}; "
        f"{info['seconds'] / 60:.1f} min wall time on "
        f"{cfg.train.threads} CPU thread ({platform.machine()}), torch {info.get('torch', '?')}",
        f"- final training {cfg.train.loss.upper()} loss: {info['final_loss']:.5f}",
        *_temporal_training(cfg),
        "",
        "## Held-out metrics",
        "",
    ]
    out += _metrics_table(scores, costs or {}, temporal)
    out += [
        "",
        f"PSNR/SSIM on uint8 RGB{', border of 2 px shaved' if scale > 1 else ''}; GFLOP per "
        "1920x1080 output frame (classic scalers: counted from their algorithm, "
        "infer/training/costs.py); edge = the `edge` mode (AMD FSR 1: EASU + RCAS)"
        + ("; warping error and flicker from the sequences below." if temporal else "."),
    ]
    if temporal is not None:
        out += _temporal_section(cfg, temporal, temporal_figure, False)
    out += ["", "## Deploy gate and speed", "", *_gate_lines(cfg, scores.baseline)]
    if parity is not None:
        out.append(
            f"- engine vs onnxruntime on a random {parity.shape[3]}x{parity.shape[2]} input: "
            f"relative error {parity.rel:.1e} (limit {cfg.gate.parity_tol:g})"
        )
    else:
        out.append("- engine parity: not checked (gate.engine = false)")
    out.append(
        f"- time per {speed.get('size')} input frame: onnxruntime CPU 1 thread "
        f"{speed.get('onnxruntime_cpu_ms', float('nan')):.1f} ms"
        + (
            f"; framesmith on {speed['engine_device']} {speed['engine_ms']:.1f} ms"
            if "engine_ms" in speed
            else ""
        )
    )
    out += [
        "",
        "## Limitations",
        "",
        "- trained on synthetic frames only: expect smaller gains on photographic or "
        "heavily post-processed game footage, and no gain on degradations not listed above",
        "- small and fast by design (real-time on a GPU); not a state-of-the-art restorer",
    ]
    if figure:
        out += ["", f"![held-out crops: {scores.baseline} | model | ground truth]({figure})"]
    return "\n".join(out) + "\n"


def _training_data(cfg: Config) -> str:
    d, size = cfg.data, f"{cfg.data.frame_size[1]}x{cfg.data.frame_size[0]}"
    if cfg.train.temporal_weight > 0:
        return (
            f"- training: {cfg.train.temporal_sequences} pairs of consecutive {size} frames "
            f"of sequences with known motion (infer/training/sequences.py: the frames above, "
            f"scrolling, with moving sprites and a still HUD; seed {cfg.seed}), random "
            f"{d.patch}px patches with flips and 90-degree turns"
        )
    return (
        f"- training: {d.frames} frames of {size} (seed {cfg.seed}), "
        f"random {d.patch}px patches with flips and 90-degree turns"
    )


def _temporal_training(cfg: Config) -> list[str]:
    t = cfg.train
    if t.temporal_weight <= 0:
        return []
    return [
        "- temporal consistency term (infer/training/pairs.py): each batch is "
        f"{cfg.data.batch // 2} pairs of consecutive frames of {t.temporal_sequences} training "
        f"sequences with known motion; weight {t.temporal_weight:g} on the MSE between output "
        "t+1 and output t moved by the true motion (the warping error as a loss; after "
        "Eilertsen et al., CVPR 2019)"
    ]


def _gate_lines(cfg: Config, baseline: str) -> list[str]:
    g = cfg.gate
    out = [f"- PSNR over {baseline}: at least {g.min_gain_db:+g} dB"]
    if g.beat:
        out.append(f"- beats {', '.join(g.beat)} on held-out PSNR and on warping error")
    if g.max_flicker_vs_bicubic > 0:
        out.append(f"- flicker on still pixels at most {g.max_flicker_vs_bicubic:g}x bicubic's")
    for name in cfg.eval.compare:
        out.append(f"- PSNR over {name}: at least {g.min_gain_over_compare_db:+g} dB")
    return out

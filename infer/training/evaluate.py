"""Held-out evaluation: PSNR / SSIM against baselines, cost, speed, report, figure, model card.

PSNR and SSIM are measured on uint8 RGB frames (outputs rounded and clipped, as they would
be displayed), averaged over the three channels. Upscaler scores shave a border of
`scale` pixels on every side (as is customary for super-resolution). SSIM uses the usual
11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, implemented here with numpy only.
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
from .dataset import EvalFrame, resize_baseline, to_nchw, to_uint8
from .export import INPUT, Parity, ort_session

# ---- metrics --------------------------------------------------------------------------


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


def score(task: str, onnx_path: str | Path, frames: list[EvalFrame]) -> Scores:
    """Run the exported model (onnxruntime CPU) and the baselines on held-out frames."""
    sess = ort_session(onnx_path)
    if task == "upscale":
        methods, baseline, shave = ["bilinear", "bicubic", "model"], "bicubic", 2
    else:
        methods, baseline, shave = ["input", "median3", "model"], "input", 0
    images: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for f in frames:
        y = sess.run(None, {INPUT: to_nchw(f.input)})[0]
        images["model"].append(to_uint8(y))
        if task == "upscale":
            for m in ("bilinear", "bicubic"):
                images[m].append(resize_baseline(f.input, f.target.shape[:2], m))
        else:
            images["input"].append(f.input)
            med = Image.fromarray(f.input).filter(ImageFilter.MedianFilter(3))
            images["median3"].append(np.asarray(med, np.uint8))
    targets = [f.target for f in frames]
    p = {m: [psnr(o, t, shave) for o, t in zip(images[m], targets, strict=True)] for m in methods}
    s = {m: [ssim(o, t, shave) for o, t in zip(images[m], targets, strict=True)] for m in methods}
    return Scores(task, baseline, methods, p, s, images, [f.how for f in frames])


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


def _metrics_table(scores: Scores) -> list[str]:
    lines = [
        "| method | PSNR (dB) | SSIM | gain over " + scores.baseline + " |",
        "|---|---|---|---|",
    ]
    base = scores.mean_psnr(scores.baseline)
    for m in scores.methods:
        name = "**model**" if m == "model" else m
        lines.append(
            f"| {name} | {scores.mean_psnr(m):.2f} | {scores.mean_ssim(m):.4f} | "
            f"{scores.mean_psnr(m) - base:+.2f} dB |"
        )
    return lines


def report_markdown(
    cfg: Config,
    scores: Scores,
    info: dict,
    parity: Parity | None,
    speed: dict,
    figure: str | None,
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
    out += ["", "## Held-out quality", ""] + _metrics_table(scores)
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
) -> str:
    scale = 2 if cfg.task == "upscale" else 1
    what = (
        "x2 upscaler (NCHW float32 RGB in [0, 1], output twice the height and width)"
        if cfg.task == "upscale"
        else "denoiser for Gaussian noise and JPEG artefacts (same size in and out)"
    )
    m = cfg.model
    arch = {
        "espcn": f"ESPCN-style: conv5x5 3->{m.features}, conv3x3 ->{m.mid_features}, "
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
        f"- training: {d.frames} frames of {d.frame_size[1]}x{d.frame_size[0]} (seed {cfg.seed}), "
        f"random {d.patch}px patches with flips and 90-degree turns",
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
        "",
        "## Held-out metrics",
        "",
    ]
    out += _metrics_table(scores)
    out += [
        "",
        f"PSNR/SSIM on uint8 RGB{', border of 2 px shaved' if scale > 1 else ''}; "
        f"the deploy gate requires >= {cfg.gate.min_gain_db:g} dB over {scores.baseline}.",
        "",
        "## Deploy gate and speed",
        "",
    ]
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

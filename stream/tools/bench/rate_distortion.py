"""What a viewer sees at equal bitrate: `python -m stream bench --rate-distortion`.

The CNN is only worth its GPU time if, for the same bits on the wire, the picture a viewer
decodes is closer to the game than what the codec alone gives. For each content and bitrate
this compares, against the ground truth rendered at full size:

  full        the full-size frames encoded at the bitrate (the no-CNN service);
  server-cnn  the half-size source upscaled by the CNN on the server, then encoded at full size
              (the service today: the CNN before the encoder, so it spends no bits);
  viewer-cnn  the half-size source encoded, decoded, then upscaled by the CNN (the browser
              bundle runs the same compiled kernels, so the numbers are those a page gets);
  bilinear    the half-size source encoded, decoded, then scaled bilinearly (a <video> element).

The half-size source is the full-size render box-downscaled (a game rendering at half
resolution, as the model was trained for). Content: the test scene (stream/sources/scene.py)
and two generated clips of game-like motion (stream/tools/bench/clips.py). Metrics on Y
(BT.601 luma of RGB), per frame: PSNR, SSIM (Gaussian 11x11, sigma 1.5) and the temporal
error (mean |(out_t - out_t-1) - (gt_t - gt_t-1)|: flicker and smear the ground truth's own
motion does not have). Also the bitrate the encoder really produced, the CNN's added latency
(wall ms per frame on this device, upload and read-back included) and its GPU ms (the sum of
its dispatches, each timed alone).

The JSON's kind is "rate-distortion"; `--plot` draws stream/tools/plots_rd.py's figure.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext
from PIL import Image

import infer
from infer.bundled import resolve_model

from ...encode import encoder_threads, realtime_options
from ...sources.scene import Scene, to_frame
from . import write_result
from .clips import CLIPS

METHODS = ("full", "server-cnn", "viewer-cnn", "bilinear")
Renderer = Callable[[int], np.ndarray]


# -- metrics --------------------------------------------------------------------------------


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8 RGB, float64 in [0, 255]: the channel the eye and codecs care for."""
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 100.0 if mse <= 1e-10 else 10 * np.log10(255.0**2 / mse)


def _gauss(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering: numpy only (no scipy in the environment)."""
    n = len(w)
    h = sum(w[i] * img[:, i : img.shape[1] - n + 1 + i] for i in range(n))
    return sum(w[i] * h[i : h.shape[0] - n + 1 + i] for i in range(n))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of Wang et al. 2004 (Gaussian window 11, sigma 1.5, K1 .01, K2 .03, L 255)."""
    x = np.arange(11) - 5.0
    w = np.exp(-(x**2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _gauss(a, w), _gauss(b, w)
    va = _gauss(a * a, w) - mu_a**2
    vb = _gauss(b * b, w) - mu_b**2
    cov = _gauss(a * b, w) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return float(s.mean())


def score(gt: list[np.ndarray], out: list[np.ndarray]) -> dict[str, Any]:
    """Per-frame PSNR, SSIM and temporal error of `out` against `gt` (Y planes)."""
    p = [psnr(g, o) for g, o in zip(gt, out, strict=True)]
    s = [ssim(g, o) for g, o in zip(gt, out, strict=True)]
    t = [0.0] + [
        float(np.mean(np.abs((out[i] - out[i - 1]) - (gt[i] - gt[i - 1]))))
        for i in range(1, len(gt))
    ]
    r = 4
    return {
        "psnr": round(float(np.mean(p)), 3),
        "ssim": round(float(np.mean(s)), 5),
        "temporal": round(float(np.mean(t[1:])) if len(t) > 1 else 0.0, 4),
        "psnr_frames": [round(v, r) for v in p],
        "ssim_frames": [round(v, 5) for v in s],
        "temporal_frames": [round(v, r) for v in t],
    }


# -- codec ----------------------------------------------------------------------------------


def _encoder(codec: str, width: int, height: int, bps: int, fps: int) -> VideoCodecContext:
    """The service's real-time settings (stream/encode.py SharedEncoder._open_codec)."""
    name = "libvpx" if codec == "vp8" else "libx264"
    ctx = av.CodecContext.create(name, "w")
    assert isinstance(ctx, VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.bit_rate = bps
    ctx.gop_size = 100000
    if name == "libvpx":
        ctx.qmin, ctx.qmax = 2, 56
    else:
        ctx.profile = "Baseline"
    ctx.options = realtime_options(name, width, height, bps, bps)
    ctx.thread_count = encoder_threads(width, height)
    ctx.open()
    return ctx


def through_codec(
    frames: list[np.ndarray], codec: str, bps: int, fps: int
) -> tuple[list[np.ndarray], float]:
    """Encode RGB frames at `bps`, decode them as a viewer does: (decoded RGB, kbit/s made)."""
    h, w = frames[0].shape[:2]
    enc = _encoder(codec, w, h, bps, fps)
    dec = av.CodecContext.create("vp8" if codec == "vp8" else "h264", "r")
    out: list[np.ndarray] = []
    nbytes = 0

    def decode(packets: list[av.Packet]) -> None:
        nonlocal nbytes
        for p in packets:
            nbytes += p.size
            for f in dec.decode(p):
                rgb = f.reformat(format="rgb24", src_colorspace="itu601", src_color_range="MPEG")
                out.append(rgb.to_ndarray())

    for k, rgb in enumerate(frames):
        frame = to_frame(rgb)
        frame.pts, frame.time_base = k, Fraction(1, fps)
        frame.pict_type = (
            av.video.frame.PictureType.I if k == 0 else av.video.frame.PictureType.NONE
        )
        decode(list(enc.encode(frame)))
    decode(list(enc.encode(None)))
    if len(out) != len(frames):
        raise RuntimeError(f"{codec}: decoded {len(out)} of {len(frames)} frames")
    return out, nbytes * 8 / (len(frames) / fps) / 1000


# -- scalers --------------------------------------------------------------------------------


def half(rgb: np.ndarray) -> np.ndarray:
    """Box downscale by 2 (area): the half-resolution render."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    x = rgb[:h, :w].astype(np.float32).reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def bilinear(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


class Cnn:
    """The bundled upscaler through infer's public API, timed per frame."""

    def __init__(self, model: str) -> None:
        self.model = infer.load(resolve_model(model))
        self.name = self.model.inputs[0]
        self.wall_ms: list[float] = []
        self.gpu_ms: dict[tuple[int, int], float] = {}

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x = (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()
        t0 = time.perf_counter()
        y = self.model.run(x)
        self.wall_ms.append((time.perf_counter() - t0) * 1000)
        assert isinstance(y, np.ndarray)
        shape = (rgb.shape[0], rgb.shape[1])
        if shape not in self.gpu_ms:
            rows = self.model.executable({self.name: x}).profile({self.name: x})
            self.gpu_ms[shape] = sum(r["ms"] for r in rows)
        return np.clip(np.rint(y[0].transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)


# -- the bench ------------------------------------------------------------------------------


def contents(width: int, height: int, fps: int) -> dict[str, Renderer]:
    scene = Scene(width, height)
    out: dict[str, Renderer] = {"scene": lambda k: scene.rgb(k, float(fps))}
    for name, make in CLIPS.items():
        out[name] = make(width, height, fps)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    w, h, fps, n = args.width, args.height, args.fps, args.frames
    if w % 4 or h % 4:
        raise ValueError(f"--size must be a multiple of 4 in each side, not {w}x{h}")
    rates = [float(b) for b in args.bitrates.split(",") if b.strip()]
    cnn = Cnn(args.model)
    rows: list[dict[str, Any]] = []
    bilinear_ms: list[float] = []
    for cname, render in contents(w, h, fps).items():
        if args.contents and cname not in args.contents.split(","):
            continue
        gt_rgb = [render(k) for k in range(n)]
        gt = [luma(f) for f in gt_rgb]
        small = [half(f) for f in gt_rgb]
        upscaled = [cnn(f) for f in small]  # the server's CNN: the same whatever the bitrate
        for mbps in rates:
            bps = int(mbps * 1e6)
            full, kbps_full = through_codec(gt_rgb, args.codec, bps, fps)
            served, kbps_served = through_codec(upscaled, args.codec, bps, fps)
            dec_small, kbps_small = through_codec(small, args.codec, bps, fps)
            page_cnn = [cnn(f) for f in dec_small]
            t0 = time.perf_counter()
            page_bil = [bilinear(f, (w, h)) for f in dec_small]
            bilinear_ms.append((time.perf_counter() - t0) * 1000 / n)
            outs = {
                "full": (full, kbps_full),
                "server-cnn": (served, kbps_served),
                "viewer-cnn": (page_cnn, kbps_small),
                "bilinear": (page_bil, kbps_small),
            }
            for method, (frames, kbps) in outs.items():
                row = {"content": cname, "method": method, "mbps": mbps, "kbps": round(kbps, 1)}
                rows.append({**row, **score(gt, [luma(f) for f in frames])})
            print(_line(rows[-4:]), flush=True)
    cnn_ms = float(np.median(cnn.wall_ms))
    gpu = cnn.gpu_ms.get((h // 2, w // 2), float("nan"))
    bil = float(np.median(bilinear_ms)) if bilinear_ms else 0.0
    methods = {
        "full": {"where": "no scaler", "added_ms": 0.0, "server_gpu_ms": 0.0, "viewer_gpu_ms": 0.0},
        "server-cnn": {
            "where": "CNN on the server, before the encoder",
            "added_ms": round(cnn_ms, 3),
            "server_gpu_ms": round(gpu, 3),
            "viewer_gpu_ms": 0.0,
        },
        "viewer-cnn": {
            "where": "CNN in the viewer's page, after the decoder",
            "added_ms": round(cnn_ms, 3),
            "server_gpu_ms": 0.0,
            "viewer_gpu_ms": round(gpu, 3),
        },
        "bilinear": {
            "where": "bilinear in the viewer's page (measured here on the CPU, PIL)",
            "added_ms": round(bil, 3),
            "server_gpu_ms": 0.0,
            "viewer_gpu_ms": 0.0,
        },
    }
    return {
        "kind": "rate-distortion",
        "size": f"{w}x{h}",
        "half": f"{w // 2}x{h // 2}",
        "fps": fps,
        "frames": n,
        "codec": args.codec,
        "model": str(args.model),
        "device": cnn.model.device.name,
        "bitrates_mbps": rates,
        "methods": methods,
        "rows": rows,
    }


def _line(rows: list[dict[str, Any]]) -> str:
    r0 = rows[0]
    cells = "  ".join(f"{r['method']} {r['psnr']:.2f} dB/{r['ssim']:.3f}" for r in rows)
    return f"{r0['content']:>8} {r0['mbps']:g} Mbit/s: {cells}"


def table(result: dict[str, Any]) -> str:
    """The result as a markdown table: PSNR (dB) / SSIM per method, a row per content and rate,
    and the bitrate the encoder really made (full / full after the server CNN / half size): an
    encoder that runs out of things to spend bits on makes less than it was asked for."""
    head = "| content | Mbit/s asked | " + " | ".join(METHODS) + " | best | kbit/s made |"
    lines = [head, "|" + "---|" * (len(METHODS) + 4)]
    by: dict[tuple[str, float], dict[str, dict[str, Any]]] = {}
    for r in result["rows"]:
        by.setdefault((r["content"], r["mbps"]), {})[r["method"]] = r
    for (content, mbps), ms in by.items():
        best = max(ms, key=lambda m: ms[m]["psnr"])
        cells = [f"{ms[m]['psnr']:.2f} / {ms[m]['ssim']:.3f}" for m in METHODS if m in ms]
        made = "/".join(f"{ms[m]['kbps']:.0f}" for m in ("full", "server-cnn", "bilinear"))
        lines.append(f"| {content} | {mbps:g} | " + " | ".join(cells) + f" | {best} | {made} |")
    lines += ["", "| temporal error (Y, mean over rates) | " + " | ".join(METHODS) + " |"]
    lines.append("|" + "---|" * (len(METHODS) + 1))
    for content in dict.fromkeys(r["content"] for r in result["rows"]):
        t = {
            m: np.mean(
                [
                    r["temporal"]
                    for r in result["rows"]
                    if (r["content"], r["method"]) == (content, m)
                ]
            )
            for m in METHODS
        }
        lines.append(f"| {content} | " + " | ".join(f"{t[m]:.2f}" for m in METHODS) + " |")
    lines.append("")
    lines.append("| method | where | added latency ms/frame | server GPU ms | viewer GPU ms |")
    lines.append("|---|---|---|---|---|")
    for m, d in result["methods"].items():
        lines.append(
            f"| {m} | {d['where']} | {d['added_ms']:.2f} | {d['server_gpu_ms']:.2f} "
            f"| {d['viewer_gpu_ms']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m stream bench --rate-distortion",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--size", default="320x180", help="full (ground-truth) size WxH")
    p.add_argument("--frames", type=int, default=60, help="frames per clip")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--bitrates", default="0.5,1,2,4", help="Mbit/s, comma-separated")
    p.add_argument("--codec", choices=("vp8", "h264"), default="vp8")
    p.add_argument("--contents", default="", help="a subset of: scene," + ",".join(CLIPS))
    p.add_argument("--model", default="upscale.onnx", help="an x2 upscaler (ONNX or bundled)")
    p.add_argument("--json", help="write the result here")
    p.add_argument("--plot", action="store_true", help="also write the figure next to --json")
    args = p.parse_args(argv)
    args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    try:
        result = run(args)
    except (ValueError, FileNotFoundError, infer.ModelError) as e:
        print(f"error: {e}")
        return 2
    print(table(result))
    write_result(result, args.json, args.plot)
    return 0

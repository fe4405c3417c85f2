"""`python -m stream bench-pipeline`: pipelined vs strictly sequential, same frames, same run.

Both variants decode nothing (frames are prepared up front) but do encode every output with
libx264, because the overlap that double buffering buys is between GPU work and the CPU
work around it (upload, readback, encode).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from fractions import Fraction

import av
import numpy as np

import infer
from infer.bundled import resolve_model

from ...pipeline import MODES, FramePipeline
from . import write_result


def synthetic_frames(n: int, width: int, height: int) -> list[av.VideoFrame]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(n):
        t = i * 0.15
        rgb = np.stack(
            [
                0.5 + 0.4 * np.sin(xx / 13.0 + t),
                0.5 + 0.4 * np.cos(yy / 11.0 - t),
                0.5 + 0.4 * np.sin((xx - yy) / 7.0 + t),
            ],
            -1,
        )
        f = av.VideoFrame.from_ndarray((rgb * 255).astype(np.uint8), format="rgb24")
        f = f.reformat(format="yuv420p")
        f.pts = i
        frames.append(f)
    return frames


class _Encoder:
    def __init__(self, width: int, height: int) -> None:
        self.ctx = av.CodecContext.create("libx264", "w")
        self.ctx.width, self.ctx.height, self.ctx.pix_fmt = width, height, "yuv420p"
        self.ctx.time_base = Fraction(1, 30)
        self.ctx.options = {"preset": "ultrafast", "tune": "zerolatency"}
        self.bytes = 0

    def encode(self, frame: av.VideoFrame | None) -> None:
        for p in self.ctx.encode(frame):
            self.bytes += p.size


async def _sequential(
    pipe: FramePipeline, frames: list[av.VideoFrame], size: tuple[int, int]
) -> float:
    enc = _Encoder(*size)
    t0 = time.perf_counter()
    for f in frames:
        await asyncio.to_thread(enc.encode, await pipe.process(f))
    enc.encode(None)
    return time.perf_counter() - t0


async def _pipelined(
    pipe: FramePipeline, frames: list[av.VideoFrame], size: tuple[int, int]
) -> float:
    async def source() -> AsyncIterator[av.VideoFrame]:
        for f in frames:
            yield f

    enc = _Encoder(*size)
    t0 = time.perf_counter()
    async for out in pipe.frames(source()):
        # off the event loop, so the pipeline keeps submitting while this frame encodes
        await asyncio.to_thread(enc.encode, out)
    enc.encode(None)
    return time.perf_counter() - t0


def _gpu_idle_ms(rows: list[dict], wall_s: float) -> float | None:
    """Wall time per frame in which the GPU ran none of this run's work.

    This is what double buffering removes, and unlike throughput it hardly moves when a
    shared host slows everything down (the GPU time is measured by the same clock).
    """
    gpu = [r["gpu_ms"] for r in rows]
    if not rows or any(g is None for g in gpu):
        return None
    return (wall_s * 1000 - sum(gpu)) / len(rows)


async def bench(pipe: FramePipeline, frames: list[av.VideoFrame], rounds: int = 3) -> dict:
    size = pipe.output_size(frames[0].width, frames[0].height)
    await pipe.process(frames[0])  # compile everything once
    seq, par = [], []
    idle: dict[str, list[float]] = {"seq": [], "par": []}
    seq_rows: list[dict] = []
    par_rows: list[dict] = []
    par_stages: dict = {}
    # Rounds alternate which variant goes first, and the speedup is the median of each
    # round's ratio: drifts in the machine's load (a shared host) hit both sides alike.
    for r in range(rounds):
        for variant in ("seq", "par") if r % 2 == 0 else ("par", "seq"):
            pipe.stats.recent.clear()
            if variant == "seq":
                seq.append(await _sequential(pipe, frames, size))
                seq_rows = pipe.stats.as_rows()
                wall, rows = seq[-1], seq_rows
            else:
                par.append(await _pipelined(pipe, frames, size))
                par_rows, par_stages = pipe.stats.as_rows(), pipe.stats.summary()
                wall, rows = par[-1], par_rows
            if (ms := _gpu_idle_ms(rows, wall)) is not None:
                idle[variant].append(ms)
    n = len(frames)
    ratios = [s / p for s, p in zip(seq, par, strict=True)]
    return {
        "kind": "pipeline",
        "frames": n,
        "input": [frames[0].width, frames[0].height],
        "output": list(size),
        "slots": pipe.slots,
        # medians, like the speedup; a single best round says more about the host than us
        "sequential_fps": n / float(np.median(seq)),
        "pipelined_fps": n / float(np.median(par)),
        "sequential_fps_best": n / min(seq),
        "pipelined_fps_best": n / min(par),
        "speedup": float(np.median(ratios)),  # median over rounds of sequential / pipelined
        "speedup_rounds": ratios,
        "speedup_best": min(seq) / min(par),
        # per frame, median over rounds; None without timestamp queries
        "gpu_idle_ms_sequential": float(np.median(idle["seq"])) if idle["seq"] else None,
        "gpu_idle_ms_pipelined": float(np.median(idle["par"])) if idle["par"] else None,
        "stages": par_stages,  # of the last pipelined round
        "timeline": par_rows,  # the last pipelined round
        "timeline_sequential": seq_rows,  # the last sequential round (stream.tools.plots)
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream bench-pipeline", description=__doc__)
    p.add_argument("--model", default="upscale.onnx")
    p.add_argument("--mode", choices=MODES, default="model")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    p.add_argument("--size", default="256x144", help="input WxH")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", help="write figures (and the per-frame timeline) here")
    p.add_argument("--plot", action="store_true", help="also write the timeline PNG next to --json")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    model = None
    if args.mode == "model":
        model = infer.load(resolve_model(args.model), precision=args.precision)
    pipe = FramePipeline(model, mode=args.mode, slots=args.slots)
    result = asyncio.run(bench(pipe, synthetic_frames(args.frames, w, h), args.rounds))
    pipe.close()
    print(
        f"{args.frames} frames {w}x{h} -> {result['output'][0]}x{result['output'][1]} "
        f"({args.mode}, {pipe.device.name})\n"
        f"  sequential {result['sequential_fps']:7.1f} fps (median round;"
        f" best {result['sequential_fps_best']:.1f})\n"
        f"  pipelined  {result['pipelined_fps']:7.1f} fps ({args.slots} slots, median round;"
        f" best {result['pipelined_fps_best']:.1f})\n"
        f"  speedup    {result['speedup']:7.2f}x (median of {len(result['speedup_rounds'])} rounds:"
        f" {', '.join(f'{r:.2f}' for r in result['speedup_rounds'])})"
    )
    if result["gpu_idle_ms_sequential"] is not None:
        print(
            f"  GPU idle   {result['gpu_idle_ms_sequential']:7.1f} ms a frame sequential,"
            f" {result['gpu_idle_ms_pipelined']:.1f} ms pipelined"
        )
    write_result(result, args.json, args.plot)
    return 0

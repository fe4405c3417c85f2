"""`python -m stream process IN OUT`: a file through the GPU pipeline to a file.

Audio streams are copied through untouched. A corrupt or truncated input stops with an error
naming the frame, and the output written so far is closed properly so it stays playable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
from pydantic import Field
from tqdm import tqdm

import infer
from infer.bundled import resolve_model

from .config import ConfigError, Mode, Precision, Section, load_section
from .pipeline import MODES, FramePipeline, PipelineError

log = logging.getLogger(__name__)

CODECS: dict[str, tuple[str, dict[str, str]]] = {
    "h264": ("libx264", {"preset": "veryfast"}),
    "hevc": ("libx265", {"preset": "ultrafast", "x265-params": "log-level=error"}),
    "vp9": ("libvpx-vp9", {"b": "0", "deadline": "realtime", "cpu-used": "8"}),
    "av1": ("libsvtav1", {"preset": "12"}),
}


class ProcessSettings(Section):
    """configs/process.toml ([process]): defaults of the command's flags."""

    model: str = "upscale.onnx"  # a file, or a bundled model's name
    mode: Mode = "model"
    precision: Precision = "fp32"  # tensor storage on the GPU
    scale: int = Field(2, ge=1, le=8)  # scale of the classic scalers (not the model)
    codec: Literal["h264", "hevc", "vp9", "av1"] = "h264"
    crf: int = Field(-1, ge=-1, le=63)  # -1: the encoder's default quality
    slots: int = Field(2, ge=1, le=8)  # frames in flight on the GPU
    adapter: int = Field(-1, ge=-1, le=64)  # GPU adapter index; -1: the best one
    progress: bool = True

    def as_defaults(self) -> dict[str, Any]:
        """As argparse defaults (-1 "auto" values become None, as the flags expect)."""
        out = self.model_dump()
        for key in ("adapter", "crf"):
            if out[key] == -1:
                out[key] = None
        out["no_progress"] = not out.pop("progress")
        return out


class InputError(Exception):
    """The input stopped being decodable; carries where."""


@dataclass
class Result:
    frames: int = 0
    audio_packets: int = 0
    seconds: float = 0.0
    error: str | None = None
    stats: dict = field(default_factory=dict)


def _open_video_encoder(
    output: av.container.OutputContainer,
    codec: str,
    crf: int | None,
    template: av.video.stream.VideoStream,
    width: int,
    height: int,
) -> av.video.stream.VideoStream:
    name, options = CODECS[codec]
    if name not in av.codecs_available:
        raise PipelineError(f"codec {codec} needs the {name} encoder, which this PyAV build lacks")
    rate = template.average_rate or template.guessed_rate or Fraction(30)
    stream = output.add_stream(name, rate=rate)
    assert isinstance(stream, av.video.stream.VideoStream)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.time_base = template.time_base
    opts: dict[str, str] = dict(options)
    if crf is not None:
        opts["crf"] = str(crf)
    stream.options = {**opts}
    return stream


async def process_file(
    src: str | Path,
    dst: str | Path,
    pipeline: FramePipeline,
    *,
    codec: str = "h264",
    crf: int | None = None,
    progress: bool = True,
) -> Result:
    """Decode `src`, run every video frame through `pipeline` (nothing dropped), encode `dst`."""
    result = Result()
    t0 = time.perf_counter()
    try:
        inp = av.open(str(src))
    except av.error.FFmpegError as e:
        raise InputError(f"{src}: cannot open ({e})") from e
    if not inp.streams.video:
        inp.close()
        raise InputError(f"{src}: has no video stream")
    vin = inp.streams.video[0]
    vin.thread_type = "AUTO"
    output = av.open(str(dst), "w")
    audio_map = {}
    for a in inp.streams.audio:
        try:
            audio_map[a.index] = output.add_stream_from_template(a)
        except (ValueError, av.error.FFmpegError) as e:
            log.warning("audio stream %d not copied: %s", a.index, e)
    width, height = pipeline.output_size(vin.codec_context.width, vin.codec_context.height)
    # every stream must exist before the first packet is muxed (audio is muxed as it comes)
    vout = _open_video_encoder(output, codec, crf, vin, width, height)
    total = vin.frames or None
    bar = tqdm(total=total, unit="frame", disable=not progress, desc=Path(src).name)
    decoded = 0

    async def frames() -> AsyncIterator[av.VideoFrame]:
        nonlocal decoded
        streams = [vin, *[s for s in inp.streams.audio if s.index in audio_map]]
        demux = inp.demux(streams)
        while True:
            try:
                packet = await asyncio.to_thread(next, demux, None)
                if packet is None:
                    break
                if packet.stream.index in audio_map:
                    if packet.dts is not None:
                        packet.stream = audio_map[packet.stream.index]
                        output.mux(packet)
                        result.audio_packets += 1
                    continue
                # decode and encode run off the event loop, so the pipeline keeps submitting
                for frame in await asyncio.to_thread(packet.decode):
                    if isinstance(frame, av.VideoFrame):
                        decoded += 1
                        yield frame
            except av.error.FFmpegError as e:
                raise InputError(
                    f"{src}: input is corrupt or truncated after frame {decoded} "
                    f"(decoding frame {decoded + 1} failed: {e})"
                ) from e
        try:
            for frame in vin.decode(None):
                decoded += 1
                yield frame
        except av.error.FFmpegError:
            pass

    try:
        async for out in pipeline.frames(frames(), live=False):
            output.mux(await asyncio.to_thread(vout.encode, out))
            result.frames += 1
            bar.update(1)
            bar.set_postfix(fps=f"{result.frames / (time.perf_counter() - t0):.1f}")
        if total and result.frames < total:
            result.error = (
                f"{src}: input ended after frame {result.frames} of {total} declared "
                "(truncated file?)"
            )
    except InputError as e:
        result.error = str(e)
    finally:
        bar.close()
        output.mux(vout.encode(None))
        output.close()
        inp.close()
    result.seconds = time.perf_counter() - t0
    result.stats = pipeline.stats.summary()
    return result


def _summary(result: Result) -> str:
    lines = [
        f"{result.frames} frames in {result.seconds:.1f} s "
        f"({result.frames / max(result.seconds, 1e-9):.1f} fps), "
        f"{result.audio_packets} audio packets copied"
    ]
    for stage in ("upload_ms", "submit_ms", "gpu_ms", "readback_ms", "wait_ms", "total_ms"):
        s = result.stats.get(stage)
        if s:
            lines.append(f"  {stage[:-3]:<9} mean {s['mean']:8.2f} ms   p95 {s['p95']:8.2f} ms")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stream process", description=__doc__)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--model", default="upscale.onnx", help="ONNX file or bundled model name")
    p.add_argument("--mode", choices=MODES, default="model")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="tensor storage")
    p.add_argument("--scale", type=int, default=2, help="scale of the classic scalers")
    p.add_argument("--codec", choices=sorted(CODECS), default="h264")
    p.add_argument("--crf", type=int, default=None)
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--adapter", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--config", help="TOML defaults for these options (configs/process.toml)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.config:  # the file's values become defaults; flags given still win
        try:
            settings = load_section(ProcessSettings, "process", pre.config)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        parser.set_defaults(**settings.as_defaults())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        model = None
        if args.mode == "model":
            model = infer.load(
                resolve_model(args.model), precision=args.precision, adapter=args.adapter
            )
        pipeline = FramePipeline(
            model, mode=args.mode, scale=args.scale, slots=args.slots, adapter=args.adapter
        )
        result = asyncio.run(
            process_file(
                args.input,
                args.output,
                pipeline,
                codec=args.codec,
                crf=args.crf,
                progress=not args.no_progress,
            )
        )
        pipeline.close()
    except (InputError, PipelineError, infer.ModelError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(_summary(result))
    if result.error:
        print(
            f"error: {result.error}; wrote the {result.frames} frames before it to {args.output}",
            file=sys.stderr,
        )
        return 1
    return 0

"""`python -m stream bench`: the service end to end at each source resolution.

For every size and mode, two measurements, one after the other so they never share the
machine:

1. the frame pipeline in this process, strictly sequential against double-buffered dispatch
   of the same frames (stream.bench): throughput and per-frame latency;
2. the live service: `python -m stream serve` started with the test scene at that size, WHEP
   viewers (aiortc) held for `--seconds` after `--warmup` (stream.tools.soak, no faults). Every
   decoded frame's marker is read, so the figures are what a viewer got: frames per second
   held, glass-to-glass latency (frame born on the server -> decoded), drops, and the
   server's own per-stage times.

The JSON (kind "service-bench") has one row per size and mode; `--plot` draws fps and latency
by resolution next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
from pathlib import Path

import infer
from infer.bundled import resolve_model
from infer.tools.benchmark import parse_size, size_label

from ...config import Codec, read_toml, write_toml
from ...pipeline import MODES, FramePipeline
from ..plots import service_bench_lines
from ..soak import SoakSettings, soak
from . import write_result
from .pipeline import bench as bench_pipeline
from .pipeline import synthetic_frames

log = logging.getLogger(__name__)

DEFAULT_SERVE_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "serve.toml"


def _serve_config(base: Path, size: tuple[int, int], fps: float, mode: str, model: str) -> dict:
    data = read_toml(base) if base.is_file() else {}
    data.setdefault("source", {}).update(
        {"uri": "testsrc", "width": size[0], "height": size[1], "fps": fps}
    )
    data.setdefault("model", {}).update({"path": model, "mode": mode})
    return data


async def measure_service(
    size: tuple[int, int],
    mode: str,
    *,
    model: str,
    fps: float,
    seconds: float,
    warmup: float,
    viewers: int,
    codec: Codec,
    workdir: Path,
    serve_config: Path = DEFAULT_SERVE_CONFIG,
) -> dict:
    """One size and mode through the live service; the soak report's figures, condensed."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "serve.toml"
    write_toml(_serve_config(serve_config, size, fps, mode, model), cfg)
    opts = SoakSettings(
        serve_config=str(cfg),
        duration_s=warmup + seconds,
        warmup_s=warmup,
        viewers=viewers,
        churn_s=0.0,
        faults=[],
        codec=codec,
        report=str(workdir / "soak.json"),
    )
    report = await soak(opts)
    (workdir / "soak.json").write_text(json.dumps(report, default=str))
    s = report.get("summary") or {}
    polls = report.get("polls") or []
    last = polls[-1] if polls else {}
    sizes = {tuple(v["size"]) for v in report.get("viewers", []) if v.get("size")}
    return {
        "error": report.get("error", ""),
        "output": list(sizes.pop()) if len(sizes) == 1 else None,
        "viewer_fps_mean": s.get("fps_mean"),
        "viewer_fps_min": s.get("fps_min"),
        "latency_p50_ms": s.get("latency_p50_ms"),
        "latency_p95_ms": s.get("latency_p95_ms"),
        "latency_p99_ms": s.get("latency_p99_ms"),
        "latency_samples": s.get("latency_samples"),
        "drop_ratio": s.get("drop_ratio"),
        "frozen_ratio": s.get("frozen_ratio"),
        "server_stages_ms": (last.get("stages") or {}).get(mode) or {},
        "server_pipeline_dropped": (last.get("pipeline_dropped") or {}).get(mode),
        "encoders": last.get("encoders") or [],
        "report": str(workdir / "soak.json"),
    }


async def measure_pipeline(
    model: infer.Model | None, mode: str, size: tuple[int, int], frames: int, rounds: int
) -> dict:
    pipe = FramePipeline(model, mode=mode, slots=2)
    try:
        r = await bench_pipeline(pipe, synthetic_frames(frames, *size), rounds)
    finally:
        pipe.close()
    seq = [row["total_ms"] for row in r["timeline_sequential"]]
    return {
        "output": r["output"],
        "sequential_fps": r["sequential_fps"],
        "pipelined_fps": r["pipelined_fps"],
        "speedup": r["speedup"],
        "speedup_rounds": r["speedup_rounds"],
        "gpu_idle_ms_sequential": r["gpu_idle_ms_sequential"],
        "gpu_idle_ms_pipelined": r["gpu_idle_ms_pipelined"],
        "sequential_latency_ms": sum(seq) / len(seq) if seq else None,
        "pipelined_latency_ms": (r["stages"].get("total_ms") or {}).get("mean"),
    }


async def run(args: argparse.Namespace) -> dict:
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {m!r}")
    model_path = resolve_model(args.model)
    model = infer.load(model_path) if "model" in modes else None
    device = model.device.name if model else ""
    work = Path(args.workdir or tempfile.mkdtemp(prefix="framesmith-bench-"))
    rows = []
    for size in sizes:
        for mode in modes:
            label = f"{size_label(size)} {mode}"
            print(f"{label}: pipeline, sequential vs pipelined ...", flush=True)
            pipe = await measure_pipeline(
                model if mode == "model" else None, mode, size, args.frames, args.rounds
            )
            print(
                f"{label}: service, {args.viewers} viewer(s) for {args.seconds:g} s ...", flush=True
            )
            svc = await measure_service(
                size,
                mode,
                model=str(model_path),
                fps=args.fps,
                seconds=args.seconds,
                warmup=args.warmup,
                viewers=args.viewers,
                codec=args.codec,
                workdir=work / f"{size[0]}x{size[1]}-{mode}",
            )
            rows.append(
                {
                    "size": f"{size[0]}x{size[1]}",
                    "label": size_label(size),
                    "mode": mode,
                    "source_fps": args.fps,
                    "pipeline": pipe,
                    "service": svc,
                }
            )
            print(service_bench_lines(rows[-1]), flush=True)
    return {
        "kind": "service-bench",
        "device": device,
        "model": model_path.name,
        "codec": args.codec,
        "viewers": args.viewers,
        "seconds": args.seconds,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(argv) if argv is not None else None
    if argv is not None and "--click-to-photon" in argv:  # issue 14: remote play's latency
        from .click_to_photon import main as click_to_photon

        return click_to_photon([a for a in argv if a != "--click-to-photon"])
    if argv is not None and "--rate-distortion" in argv:  # issue 29: equal-bitrate quality
        from .rate_distortion import main as rate_distortion

        return rate_distortion([a for a in argv if a != "--rate-distortion"])
    if argv is not None and "--adapt" in argv:  # issue 16: the frame rate held over time
        from .adapt import main as adapt

        return adapt([a for a in argv if a != "--adapt"])
    p = argparse.ArgumentParser(
        prog="python -m stream bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sizes", default="160x90,320x180,640x360", help="360p,720p,1080p or WxH")
    p.add_argument("--modes", default="model", help=f"comma-separated: {', '.join(MODES)}")
    p.add_argument("--model", default="upscale.onnx", help="ONNX file or bundled model name")
    p.add_argument("--fps", type=float, default=30.0, help="test scene frame rate")
    p.add_argument("--seconds", type=float, default=20.0, help="measured time per size")
    p.add_argument("--warmup", type=float, default=8.0, help="not measured: compile, keyframes")
    p.add_argument("--viewers", type=int, default=1)
    p.add_argument("--codec", choices=("vp8", "h264"), default="vp8")
    p.add_argument("--frames", type=int, default=32, help="frames of the pipeline comparison")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the pipeline comparison")
    p.add_argument("--workdir", help="where servers' configs, logs and soak reports go")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--plot", action="store_true", help="also write a PNG next to --json")
    p.add_argument(
        "--click-to-photon",
        action="store_true",
        help="measure remote play instead: see python -m stream bench --click-to-photon -h",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = asyncio.run(run(args))
    except (ValueError, FileNotFoundError, infer.ModelError) as e:
        print(f"error: {e}")
        return 2
    write_result(result, args.json, args.plot)
    failed = [r for r in result["rows"] if r["service"].get("error")]
    return 1 if failed else 0

"""Measure the live service end to end on this machine: source size, output size, fps held
at the browser, and glass-to-glass latency from the frame marker (frame born on the server
-> frame shown in headless Chromium), median and p95.

    .venv/bin/python scripts/measure_stream.py --width 320 --height 180 --fps 30 --seconds 20

--model: an ONNX file or bundled name; default the bundled upscale.onnx when present, else an
ESPCN-shaped x2 (Conv 3->8, ReLU, Conv 8->12, DepthToSpace) whose weights make it a
nearest-neighbour upscaler, so the marker stays readable and the GPU cost is a real CNN's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import infer  # noqa: E402
from infer.bundled import resolve_model  # noqa: E402
from tests.stream.rtc import nearest_upscaler, small_config, start_server  # noqa: E402
from tests.stream.test_viewer_browser import ARGS, CHROMIUM  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else float("nan")


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--codec", default="vp8")
    ap.add_argument("--model", default=None)
    ap.add_argument("--mode", default="model")
    ap.add_argument("--bitrate", type=int, default=1_500_000)
    ap.add_argument("--out", default=str(REPO / "artifacts" / "measure_stream.json"))
    args = ap.parse_args()
    from playwright.async_api import async_playwright

    model, name = None, ""
    if args.mode == "model":
        try:
            path = resolve_model(args.model or "upscale.onnx")
            model, name = infer.load(str(path)), path.name
        except FileNotFoundError:
            if args.model:
                raise
            model, name = infer.load(nearest_upscaler()), "espcn-shaped nearest x2 (stand-in)"
    cfg = small_config(
        **{
            "source.width": args.width,
            "source.height": args.height,
            "source.fps": args.fps,
            "model.mode": args.mode,
            "encoder.bitrate": args.bitrate,
        }
    )
    srv = await start_server(cfg, model, name)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            t0 = time.monotonic()
            await page.goto(f"{srv.url}/?codec={args.codec}")
            await page.wait_for_function(
                "() => document.getElementById('main').currentTime > 0", timeout=60_000
            )
            first = time.monotonic() - t0
            await asyncio.sleep(args.warmup)
            before = await page.evaluate(
                "async () => { const s = window.framesmith; s.latencyWindow = 1e6;"
                " s.latencies = []; const r = await s.session.pc.getStats(); let d = 0;"
                " r.forEach(x => { if (x.type === 'inbound-rtp') d = x.framesDecoded; });"
                " return {decoded: d, dropped: 0}; }"
            )
            pipe = srv.service.pipeline(srv.service.mode).stats
            gpu0, drop0 = pipe.frames_out, pipe.dropped
            src0 = srv.service.source.frames_out
            t1 = time.monotonic()
            await asyncio.sleep(args.seconds)
            dt = time.monotonic() - t1
            after = await page.evaluate(
                "async () => { const r = await window.framesmith.session.pc.getStats();"
                " let o = {}; r.forEach(x => { if (x.type === 'inbound-rtp') o = {decoded:"
                " x.framesDecoded, dropped: x.framesDropped, w: x.frameWidth, h: x.frameHeight,"
                " jb: x.jitterBufferDelay / x.jitterBufferEmittedCount,"
                " freezes: x.freezeCount}; }); return o; }"
            )
            lat = await page.evaluate("() => window.framesmith.latencies")
            overlay = await page.inner_text("#overlay")
            shot = REPO / "artifacts" / "measure_stream.png"
            shot.parent.mkdir(exist_ok=True)
            await page.screenshot(path=str(shot))
            await browser.close()
        stats = srv.service.stats()
        result = {
            "device": srv.service.device,
            "model": name or args.mode,
            "codec": args.codec,
            "source": f"{args.width}x{args.height}@{args.fps:g}",
            "output": f"{after.get('w')}x{after.get('h')}",
            "source_fps": round((srv.service.source.frames_out - src0) / dt, 2),
            "gpu_fps": round((pipe.frames_out - gpu0) / dt, 2),
            "pipeline_dropped": pipe.dropped - drop0,
            "browser_fps": round((after["decoded"] - before["decoded"]) / dt, 2),
            "browser_dropped": after.get("dropped"),
            "freezes": after.get("freezes"),
            "jitter_buffer_ms": round(1000 * after.get("jb", float("nan")), 1),
            "g2g_samples": len(lat),
            "g2g_median_ms": round(statistics.median(lat), 1) if lat else None,
            "g2g_p95_ms": round(pct(lat, 95), 1) if lat else None,
            "g2g_min_ms": round(min(lat), 1) if lat else None,
            "first_frame_s": round(first, 2),
            "server_stages": stats["pipelines"],
            "encoders": stats["encoders"],
            "overlay": overlay,
        }
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(
            json.dumps(
                {k: v for k, v in result.items() if k not in ("server_stages", "encoders")},
                indent=1,
            )
        )
    finally:
        await srv.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

"""`python -m stream bench --click-to-photon`: a player's click (or key) to the first frame on
their screen that shows its effect, end to end, with where the time goes.

Everything is real: an Xvfb with our input app (stream/tools/input_app.py: it redraws an input
counter on each press) captured by `python -m stream serve --source x11:...` in a child
process, and the viewer page in headless Chromium (Debian's, through playwright) clicking the
picture and pressing keys like a player, at random gaps (150-350 ms: the press lands at a
random phase of the capture tick). The page measures each press itself (static/clicks.js) and
the stages between from the server's acknowledgement and the frame's message
(stream/input/latency.py names them). The JSON (kind "click-to-photon") holds every sample,
their p50/p95 and stage medians, the server's own summary (/api/stats), the capture's cost,
and the aim: one capture interval + the server's stages + one frame interval. `--plot` draws
the distribution and the breakdown.

`--app xcalc|xterm`: a real X client that draws no counter instead (c2p_apps.py: xcalc acts
on the button's release, xterm on the key's press); the page then watches the region where the
effect shows.

The bar from the issue: a naive loop (PyAV x11grab at 15 fps + xdotool per event + aiortc,
no CNN, 640x360) measured 130-157 ms on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from infer.tools.benchmark import parse_size

from ...auth import Role, TokenAuthority
from ...config import write_toml
from ...input.latency import summarise
from ..input_app import InputAppProcess
from ..soak.browser import ARGS, CHROMIUM, wait_js
from ..soak.server import LocalServer
from ..xvfb import Xvfb
from . import write_result
from .c2p_apps import APPS, App, running

log = logging.getLogger(__name__)

NAIVE_MS = (130.0, 157.0)  # the bar: x11grab 15 fps + xdotool + aiortc, 640x360


# the page's receive side over the whole run, from its video inbound-rtp stats (per frame, ms)
INBOUND_JS = """async () => {
  const pc = window.framesmith.session && window.framesmith.session.pc;
  if (!pc) return null;
  let v = null;
  (await pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video" && (!v || r.mid === "0")) v = r;
  });
  if (!v) return null;
  const per = (total, n) => (n ? Math.round((100000 * total) / n) / 100 : null);
  return {
    frames_decoded: v.framesDecoded, frames_dropped: v.framesDropped || 0,
    jitter_buffer_ms: per(v.jitterBufferDelay, v.jitterBufferEmittedCount),
    jitter_buffer_target_ms: per(v.jitterBufferTargetDelay, v.jitterBufferEmittedCount),
    jitter_buffer_minimum_ms: per(v.jitterBufferMinimumDelay, v.jitterBufferEmittedCount),
    assembly_ms: per(v.totalAssemblyTime, v.framesAssembledFromMultiplePackets),
    decode_ms: per(v.totalDecodeTime, v.framesDecoded),
    processing_ms: per(v.totalProcessingDelay, v.framesDecoded),
    freezes: v.freezeCount || 0,
  };
}"""


async def press_and_measure(
    url: str,
    token: str,
    *,
    clicks: int,
    keys: int,
    codec: str,
    seed: int,
    screenshot: Path | None,
    app: App | None = None,
    browser: str = "chromium",
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """The viewer page in Chromium (or Firefox): `clicks` clicks and `keys` key presses, each
    waited for (3 s at most), at random gaps. The page's samples, misses, stats and overlay.
    With a foreign `app`, its own presses (clicks + keys of them, cycled) and region instead."""
    rng = random.Random(seed)
    if browser == "firefox":
        from .c2p_firefox import firefox_page

        async with firefox_page(log_dir or Path(tempfile.gettempdir()), 1400, 900) as ff:
            return await _measure(ff, url, token, clicks, keys, codec, rng, screenshot, app)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await chromium.new_page(viewport={"width": 1400, "height": 820})
            return await _measure(page, url, token, clicks, keys, codec, rng, screenshot, app)
        finally:
            await chromium.close()


async def _measure(
    page: Any,
    url: str,
    token: str,
    clicks: int,
    keys: int,
    codec: str,
    rng: random.Random,
    screenshot: Path | None,
    app: App | None,
) -> dict[str, Any]:
    await page.goto(f"{url}/?codec={codec}#token={token}")  # a player's token
    playing = await wait_js(
        page,
        "() => { const v = document.getElementById('main'); return v.videoWidth > 0"
        " && v.currentTime > 0 && window.framesmith && window.framesmith.control"
        " && window.framesmith.bestRtt < Infinity; }",
    )
    if not playing:
        raise RuntimeError("the viewer page did not play within 60 s")
    await asyncio.sleep(2.0)  # keyframe, jitter buffer settled, clock offset found
    box = await page.locator("#main").bounding_box()
    if box is None:
        raise RuntimeError("the viewer page shows no video")
    missed = 0
    presses: list[Any] = ["click"] * clicks + ["key"] * keys
    rng.shuffle(presses)
    if app is not None:
        # focus (the stage's keys, X's pointer over the window) before any press is
        # measured: the page measures nothing while it has no region or counter
        fx, fy = app.focus
        await page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        await asyncio.sleep(0.5)
        await page.evaluate("r => { window.framesmith.c2p.region = r; }", app.region)
        presses = [app.presses[k % len(app.presses)] for k in range(clicks + keys)]
    else:
        presses.insert(0, "click")  # the first click focuses the stage for the keys
    for kind in presses:
        before = await page.evaluate("() => window.framesmith.c2p.samples.length")
        if isinstance(kind, tuple) and kind[0] == "click":
            x, y = box["x"] + box["width"] * kind[1], box["y"] + box["height"] * kind[2]
            await page.mouse.click(x, y)
        elif isinstance(kind, tuple):
            await page.keyboard.press(kind[1])
        elif kind == "click":
            x = box["x"] + box["width"] * rng.uniform(0.55, 0.95)
            y = box["y"] + box["height"] * rng.uniform(0.05, 0.4)
            await page.mouse.click(x, y)
        else:
            await page.keyboard.press(rng.choice(["KeyA", "KeyS", "KeyD", "Space"]))
        if not await wait_js(
            page, "n => window.framesmith.c2p.samples.length > n", before, timeout_s=3.0
        ):
            missed += 1
        await asyncio.sleep(rng.uniform(0.15, 0.35))
    await asyncio.sleep(1.5)  # one more overlay refresh
    got = await page.evaluate(
        "() => ({samples: window.framesmith.c2p.samples, stats: window.framesmith.stats,"
        " missed: window.framesmith.c2p.missed,"
        " size: [document.getElementById('main').videoWidth,"
        " document.getElementById('main').videoHeight]})"
    )
    got["inbound"] = await page.evaluate(INBOUND_JS)
    got["overlay"] = await page.inner_text("#overlay")
    got["missed_waits"] = missed
    if screenshot is not None:
        await page.screenshot(path=str(screenshot))
    return got


def playout_bounds(text: str) -> list[int]:
    """--playout-delay: 'browser' (none sent) or 'MIN,MAX' in ms."""
    if text == "browser":
        return []
    lo, hi = (int(x) for x in text.split(","))
    return [lo, hi]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    w, h = parse_size(args.size)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="framesmith-c2p-"))
    work.mkdir(parents=True, exist_ok=True)
    foreign = APPS.get(getattr(args, "app", "input"))
    with contextlib.ExitStack() as stack:
        x = stack.enter_context(Xvfb(w, h))
        app = None
        if foreign is None:
            app = stack.enter_context(InputAppProcess(x.display, work / "input_app.jsonl"))
        else:
            stack.enter_context(running(foreign, x.display, w, h))
        cfg = {
            "source": {
                "uri": f"x11:{x.display}",
                "fps": args.fps,
                "marker": True,
                "on_change": args.grab == "change",
            },
            "model": {"mode": args.mode, "compare": False, "path": args.model},
            "encoder": {"default_codec": args.codec},
            "server": {"playout_delay_ms": playout_bounds(getattr(args, "playout_delay", "0,100"))},
        }
        server = LocalServer(str(write_toml(cfg, work / "bench-serve.toml")), work)
        await server.start()
        authority = TokenAuthority.from_file(server.secret_file)  # the server runs with auth
        try:
            page = await press_and_measure(
                server.url,
                authority.mint(Role.PLAYER, 3600),
                clicks=args.clicks,
                keys=args.keys,
                codec=args.codec,
                seed=args.seed,
                screenshot=work / "c2p-page.png",
                app=foreign,
                browser=getattr(args, "browser", "chromium"),
                log_dir=work,
            )
            admin = {"Authorization": f"Bearer {authority.mint(Role.ADMIN, 600)}"}
            async with (
                aiohttp.ClientSession() as http,
                http.get(server.url + "/api/stats", headers=admin) as r,
            ):
                stats = await r.json()
        finally:
            await server.stop()
        presses = (
            sum(1 for e in app.events() if e["type"] in ("button", "key"))
            if app is not None
            else None
        )
    samples = page["samples"]
    summary = summarise(samples)
    interval = 1000.0 / args.fps
    st = summary["stages_p50_ms"]
    server_ms = sum(st.get(k, 0.0) for k in ("capture", "pipeline", "encode"))
    aim = interval + server_ms + interval
    return {
        "kind": "click-to-photon",
        "display": f"{w}x{h}",
        "output": page["size"],
        "fps": args.fps,
        "grab": args.grab,
        "mode": args.mode,
        "codec": args.codec,
        "app": foreign.name if foreign is not None else "input",
        "browser": getattr(args, "browser", "chromium"),
        "acts_on": foreign.acts_on if foreign is not None else "press",
        "playout_delay": getattr(args, "playout_delay", "0,100"),
        "clicks": args.clicks,
        "keys": args.keys,
        "presses_seen_by_app": presses,
        "missed": page["missed_waits"],
        "summary": summary,
        "server": stats.get("click_to_photon"),
        "capture": {k: v for k, v in stats.get("source", {}).items() if k.startswith("capture")},
        "device": stats.get("device"),
        "aim_ms": round(aim, 2),
        "aim": "one capture interval + capture, pipeline and encode (p50) + one frame interval",
        "naive_ms": list(NAIVE_MS),
        "overlay": page["overlay"],
        "page_stats": page["stats"],
        "page_inbound": page.get("inbound"),
        "samples": samples,
        "workdir": str(work),
    }


def lines(result: dict[str, Any]) -> str:
    s = result["summary"]
    st = " ".join(f"{k} {v:.1f}" for k, v in s["stages_p50_ms"].items())
    parts = " ".join(f"{k} {v:.1f}" for k, v in s.get("decode_parts_p50_ms", {}).items())
    causes = ", ".join(
        f"{k} {c['worst_in']}x (+{c['mean_excess_ms']:.0f} ms)"
        for k, c in s.get("p95_causes", {}).items()
        if c["worst_in"]
    )
    pd = result.get("playout_delay", "browser")
    inbound = result.get("page_inbound") or {}
    page = " ".join(
        f"{k.removesuffix('_ms')} {v:.1f}"
        for k, v in inbound.items()
        if k.endswith("_ms") and v is not None
    )
    return (
        f"click-to-photon {result.get('app', 'input')} in {result.get('browser', 'chromium')} "
        f"{result['display']}@{result['fps']:g} "
        f"({result['grab']}) "
        f"{result['mode']} -> "
        f"{result['output'][0]}x{result['output'][1]} {result['codec']}, playout-delay {pd}: "
        f"p50 {s['p50_ms']} ms, "
        f"p95 {s['p95_ms']} ms ({s['samples']} samples, {result['missed']} missed); "
        f"aim {result['aim_ms']} ms; naive bar {NAIVE_MS[0]:g}-{NAIVE_MS[1]:g} ms\n"
        f"  stage medians (ms): {st}\n"
        f"  decode's parts (ms): {parts or '-'}; page per frame (ms): {page or '-'}\n"
        f"  p95's causes (slowest stage of each press at or above p95): {causes or '-'}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m stream bench --click-to-photon",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--size", default="640x360", help="the X display (Xvfb) size")
    p.add_argument("--fps", type=float, default=30.0, help="capture rate")
    p.add_argument(
        "--grab",
        choices=("change", "tick"),
        default="change",
        help="grab when the screen changes (default) or on every tick",
    )
    p.add_argument("--mode", default="bilinear", help="model | bilinear | bicubic | bypass")
    p.add_argument("--model", default="upscale.onnx", help="for --mode model")
    p.add_argument("--codec", choices=("vp8", "h264"), default="vp8")
    p.add_argument(
        "--app",
        choices=("input", *APPS),
        default="input",
        help="the X client clicked: our input app (draws a counter), xcalc (acts on release) "
        "or xterm (acts on press); the last two at 640x360",
    )
    p.add_argument(
        "--playout-delay",
        default="0,100",
        help="the RTP playout-delay bounds serve sends, MIN,MAX in ms (default 0,100, as serve "
        "does), or 'browser': none sent",
    )
    p.add_argument(
        "--browser",
        choices=("chromium", "firefox"),
        default="chromium",
        help="Debian's chromium (playwright) or firefox-esr (Marionette)",
    )
    p.add_argument("--clicks", type=int, default=40)
    p.add_argument("--keys", type=int, default=10)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--workdir", help="server config and log, the input app's log, a screenshot")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--plot", action="store_true", help="also write a PNG next to --json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = asyncio.run(run(args))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}")
        return 2
    print(lines(result))
    write_result(result, args.json, args.plot)
    return 0 if result["summary"]["samples"] else 1

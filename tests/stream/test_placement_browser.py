"""Viewer placement in Debian's headless Chromium (WebGPU on SwiftShader, as in
tests/infer/test_export_web_browser.py): the viewer page, switched live from the server's
upscale to its own, keeps playing: the server sends the 160x90 frames before the model, the
page runs the model's bundle (the tiled conv kernel: SwiftShader compiles the default one for
minutes) and presents each output on a WebGPU canvas over the <video>; the canvas's pixels are
the model's output of the frame the page decoded, and that frame is the scene's; the server's
model pipeline does no work meanwhile; a click on the canvas lands on the source pixel under
it; the overlay and /api/stats say where the picture is upscaled; "auto" decides by the
page's own measurement; and the page goes back to the server's picture on request."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

import infer
from stream.sources import marker

from .rtc import nearest_upscaler, small_config, start_server
from .test_viewer_browser import ARGS, CHROMIUM, _playwright, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.gpu, pytest.mark.slow]

W, H = 160, 90  # the frames before the model; the model's output is 2x
# WebGPU with a canvas: with --disable-gpu (test_export_web_browser.py's switches, compute
# only) Chromium 156's GPU process has no shared-image backing for a WebGPU canvas's swap
# chain and dies at the first present ("Could not find SharedImageBackingFactory ...
# WebgpuSwapChainTexture"); compositing through ANGLE on SwiftShader's Vulkan has one
WEBGPU_CANVAS = [
    "--enable-unsafe-webgpu",
    "--use-angle=vulkan",
    "--use-vulkan=swiftshader",
    "--enable-features=Vulkan",
    "--enable-unsafe-swiftshader",
]
BROWSER_ARGS = [a for a in ARGS if a != "--disable-gpu"] + WEBGPU_CANVAS


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(float) - b.astype(float)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def _image(triple) -> np.ndarray:
    w, h, data = triple
    return np.asarray(data, np.uint8).reshape(h, w, 4)[..., :3]


@pytest.mark.timeout(600)
async def test_a_viewer_switched_to_viewer_placement_keeps_playing_on_a_webgpu_canvas(artifacts):
    pw = _playwright()
    cfg = small_config(
        **{"model.mode": "model", "model.web_kernels": ["tiled"], "source.fps": 15.0}
    )
    srv = await start_server(cfg, infer.load(nearest_upscaler()), "nearest_x2")
    svc = srv.service
    try:
        async with pw.async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS
            )
            page = await browser.new_page(viewport={"width": 900, "height": 500})
            logs: list[str] = []
            page.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
            await page.goto(f"{srv.url}/?placement=server")
            webgpu = "async () => !!(navigator.gpu && (await navigator.gpu.requestAdapter()))"
            if not await page.evaluate(webgpu):
                pytest.skip("this Chromium has no WebGPU adapter")
            # the server's model upscales first (once it is made ready)
            deadline = time.monotonic() + 180
            while svc.running_mode() != "model":
                assert time.monotonic() < deadline, "the model never served"
                await asyncio.sleep(0.2)
            await wait_for(page, "document.getElementById('main').videoWidth === 320", 60_000)

            await page.select_option("#placement", "viewer")
            # SwiftShader compiles the bundle's kernels on the CPU: generous
            await wait_for(page, "window.framesmith.render.frames >= 5", 300_000)
            assert await page.evaluate("document.getElementById('main').videoWidth") == W
            assert not await page.evaluate("document.getElementById('upscaled').hidden")
            assert await page.evaluate("window.framesmith.render.placement") == "viewer"
            # it keeps playing: canvas frames advance, and so do the frames the server sends
            stats0 = svc.stats()
            f0 = await page.evaluate("window.framesmith.render.frames")
            n0 = await page.evaluate("window.framesmith.lastFrame.n")
            # SwiftShader: ~1 s a frame on a loaded 2-core host; the newest decoded frame wins
            await wait_for(page, f"window.framesmith.render.frames >= {f0 + 3}", 120_000)
            f1 = await page.evaluate("window.framesmith.render.frames")
            n1 = await page.evaluate("window.framesmith.lastFrame.n")
            stats1 = svc.stats()
            assert f1 > f0 + 2 and n1 > n0 + 10, (f0, f1, n0, n1)
            # and costs the server no model work for this viewer
            m0, m1 = stats0["pipelines"]["model"], stats1["pipelines"]["model"]
            assert m1["frames_in"] == m0["frames_in"], (m0, m1)
            assert stats1["placement"]["frames_tapped"] > stats0["placement"]["frames_tapped"]

            # the canvas holds the model's output of the frame the page decoded ...
            await page.evaluate("window.framesmith.render.snapshotWanted = true")
            await wait_for(page, "window.framesmith.render.snapshot !== null", 60_000)
            snap = await page.evaluate("window.framesmith.render.snapshot")
            frame, canvas = _image(snap["input"]), _image(snap["output"])
            assert frame.shape == (H, W, 3) and canvas.shape == (2 * H, 2 * W, 3)
            expected = frame.repeat(2, axis=0).repeat(2, axis=1)  # the model: nearest x2
            diff = np.abs(canvas.astype(int) - expected.astype(int))
            assert diff.max() <= 2, diff.max()  # 8-bit in, float model, 8-bit canvas
            # ... and that frame is the scene's (VP8 at 600 kbit/s: tens of dB, not exact)
            luma = frame @ np.array([0.299, 0.587, 0.114])
            n = marker.read(luma)
            assert n is not None
            scene = svc.source.scene.rgb(n, svc.source.fps)
            assert _psnr(frame, scene) > 22, _psnr(frame, scene)
            assert _psnr(canvas, scene.repeat(2, axis=0).repeat(2, axis=1)) > 22
            await page.screenshot(path=str(artifacts / "placement-viewer.png"))

            # a click on the canvas lands on the source pixel under it
            box = await page.locator("#upscaled").bounding_box()
            x, y = box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.2
            hit = await page.evaluate(f"document.elementFromPoint({x}, {y}).id")
            assert hit == "upscaled"
            await page.mouse.move(x, y)
            await page.mouse.down()
            await page.mouse.up()
            deadline = time.monotonic() + 20
            while svc.source.scene.clicks < 1:
                assert time.monotonic() < deadline, "the click never arrived"
                await asyncio.sleep(0.1)
            cx, cy = svc.source.scene.cursor
            assert abs(cx * (W - 1) - 0.8 * (W - 1)) <= 1.0, cx  # within a source pixel
            assert abs(cy * (H - 1) - 0.2 * (H - 1)) <= 1.0, cy

            # the overlay and /api/stats say where it is upscaled
            await asyncio.sleep(1.5)
            overlay = await page.inner_text("#overlay")
            assert "placement viewer" in overlay, overlay
            stats = svc.stats()
            (session,) = stats["sessions"]
            assert stats["placement"]["sessions"][session["id"]]["placement"] == "viewer"
            assert session["tracks"][0]["stream"] == "lowres"

            # back to the server's picture, live
            await page.select_option("#placement", "server")
            await wait_for(page, "document.getElementById('main').videoWidth === 320", 30_000)
            await wait_for(page, "document.getElementById('upscaled').hidden", 10_000)
            assert svc.stats()["placement"]["viewer_placed"] == 0

            # auto: the page's own measurement decides, and says so
            await page.select_option("#placement", "auto")
            await wait_for(page, "(window.framesmith.render.asked || {}).auto", 60_000)
            asked = await page.evaluate("window.framesmith.render.asked")
            keeps_up = asked["model_ms"] <= 0.8 * asked["frame_ms"]
            assert asked["placement"] == ("viewer" if keeps_up else "server"), asked
            (artifacts / "placement.json").write_text(
                json.dumps({"asked": asked, "overlay": overlay, "logs": logs}, indent=1)
            )
            print(f"\nauto: {asked}\n{overlay}")
            await browser.close()
    finally:
        await srv.close()

"""The viewer page in headless Chromium (Debian's package, driven by playwright): the video
plays at the expected size and the overlay shows a glass-to-glass latency measured from the
frame marker. Screenshot kept in the `artifacts` folder (tmp_path by default)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from .rtc import small_config, start_server, viewer_page_config

pytestmark = [pytest.mark.browser, pytest.mark.gpu]

CHROMIUM = os.environ.get("FRAMESMITH_CHROMIUM", "/usr/bin/chromium")
# Chromium keeps only the last --disable-features, and playwright passes its own first: one
# merged switch with playwright's list (1.65) plus ours; mDNS host candidates cost aioice ~1 s
# (ANCHORS "Streaming")
FEATURES = ",".join(
    [
        "AvoidUnnecessaryBeforeUnloadCheckSync",
        "DestroyProfileOnBrowserClose",
        "HttpsUpgrades",
        "HttpsFirstBalancedModeAutoEnable",
        "LensOverlay",
        "MediaRouter",
        "PaintHolding",
        "ThirdPartyStoragePartitioning",
        "OptimizationHints",
        "NetworkTimeServiceQuerying",
        "WebRtcHideLocalIpsWithMdns",
        "Translate",
        "DialMediaRouteProvider",
    ]
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    f"--disable-features={FEATURES}",
]


async def wait_for(page, expression: str, timeout: float) -> None:
    """Poll `expression` (a JS function or expression) until it is truthy. The page's CSP
    forbids eval, which playwright's wait_for_function needs; evaluate does not."""
    fn = expression if expression.lstrip().startswith("()") else f"() => ({expression})"
    deadline = time.monotonic() + timeout / 1000
    while not await page.evaluate(fn):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout / 1000:g} s for {expression}")
        await asyncio.sleep(0.1)


def _playwright():
    pw = pytest.importorskip("playwright.async_api")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return pw


@pytest.mark.timeout(150)
@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_viewer_page_plays_and_measures_glass_to_glass_latency(codec, artifacts):
    pw = _playwright()
    srv = await start_server(viewer_page_config())
    try:
        async with pw.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = await browser.new_page(viewport={"width": 1000, "height": 560})
            logs: list[str] = []
            page.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
            t0 = time.monotonic()
            await page.goto(f"{srv.url}/?codec={codec}")
            await wait_for(
                page,
                "() => { const v = document.getElementById('main');"
                " return v.videoWidth > 0 && v.currentTime > 0; }",
                timeout=30_000,
            )
            first_frame_s = time.monotonic() - t0
            size = await page.evaluate(
                "() => [document.getElementById('main').videoWidth,"
                " document.getElementById('main').videoHeight]"
            )
            assert size == [640, 360]
            # input from the page reaches the scene's cursor
            box = await page.locator("#main").bounding_box()
            await page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.2)
            await page.mouse.down()
            await page.mouse.up()
            await page.keyboard.press("KeyD")
            # let latencies accumulate (a few seconds of frames)
            await wait_for(page, "() => window.framesmith.latencies.length >= 100", timeout=60_000)
            await asyncio.sleep(1.5)  # one more overlay refresh
            stats = await page.evaluate("() => window.framesmith.stats")
            overlay = await page.inner_text("#overlay")
            await page.screenshot(path=str(artifacts / f"viewer-{codec}.png"))
            lat = await page.evaluate("() => window.framesmith.latencies")
            (artifacts / f"viewer-{codec}.json").write_text(
                json.dumps(
                    {
                        "first_frame_s": first_frame_s,
                        "stats": stats,
                        "latencies_ms": lat,
                        "server": srv.service.stats(),
                    },
                    indent=1,
                    default=str,
                )
            )
            assert "glass-to-glass" in overlay and " ms median" in overlay, overlay
            assert stats["codec"].lower() == codec
            assert stats["width"] == 640 and stats["height"] == 360
            assert 0 < stats["g2gMedian"] < 2000, stats
            assert stats["markersRead"] > 0.9 * (stats["markersRead"] + stats["markersMissed"])
            assert srv.service.input_events >= 2
            assert srv.service.source.scene.last_key == "d"
            cx, cy = srv.service.source.scene.cursor
            assert abs(cx - 0.8) < 0.05 and abs(cy - 0.2) < 0.05
            # the page says goodbye on pagehide (DELETE with keepalive)
            assert len(srv.service.sessions.viewers) == 1
            await page.close(run_before_unload=True)
            deadline = time.monotonic() + 5
            while srv.service.sessions.viewers and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not srv.service.sessions.viewers, "page left without DELETE"
            await browser.close()
            print(f"\n{codec}: first frame {first_frame_s:.2f} s; overlay:\n{overlay}")
    finally:
        await srv.close()


@pytest.mark.timeout(150)
async def test_viewer_page_compare_split_and_mode_switch(artifacts):
    pw = _playwright()
    import infer

    from .clips import tiny_upscaler

    cfg = small_config(
        **{
            "source.width": 320,
            "source.height": 180,
            "source.fps": 20.0,
            "model.mode": "model",
            "model.compare": True,
        }
    )
    srv = await start_server(cfg, infer.load(tiny_upscaler()), "tiny_x2")
    svc = srv.service
    try:
        async with pw.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = await browser.new_page(viewport={"width": 1000, "height": 560})
            await page.goto(f"{srv.url}/?compare=1")
            await wait_for(
                page,
                "() => ['main', 'side'].every(id => { const v = document.getElementById(id);"
                " return v.videoWidth === 640 && v.currentTime > 0; })",
                timeout=60_000,
            )
            assert svc.encoders[("compare", "vp8")].frames_encoded > 0
            await page.evaluate(
                "() => { const s = document.getElementById('slider'); s.value = 35;"
                " s.dispatchEvent(new Event('input')); }"
            )
            clip = await page.evaluate("() => document.getElementById('side').style.clipPath")
            assert clip == "inset(0px 0px 0px 35%)"
            await wait_for(
                page, "() => document.querySelectorAll('#mode option').length >= 3", timeout=10_000
            )
            await asyncio.sleep(1.0)
            await page.screenshot(path=str(artifacts / "viewer-compare.png"))
            await page.select_option("#mode", "bicubic")
            deadline = time.monotonic() + 10
            while svc.mode != "bicubic" and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert svc.mode == "bicubic"
            await browser.close()
    finally:
        await srv.close()


@pytest.mark.timeout(150)
async def test_browser_publishes_over_whip_and_a_viewer_gets_it_processed():
    pw = _playwright()
    import aiohttp

    from .rtc import recv_frames, whep

    cfg = small_config(**{"source.uri": "webrtc", "source.width": 192, "source.height": 108})
    srv = await start_server(cfg)
    svc = srv.service
    try:
        async with pw.async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    *ARGS,
                    "--use-fake-device-for-media-stream",
                    "--use-fake-ui-for-media-stream",
                ],
            )
            page = await browser.new_page()
            await page.goto(f"{srv.url}/publish")
            await page.select_option("#size", "320x180")
            await page.fill("#fps", "15")
            await page.click("#camera")
            deadline = time.monotonic() + 30
            while svc.source.state != "live" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert svc.source.state == "live", await page.inner_text("#status")
            async with aiohttp.ClientSession() as http:
                v = await whep(http, srv.url)
                frames = []
                deadline = time.monotonic() + 30
                while len(frames) < 10 and time.monotonic() < deadline:
                    got = await recv_frames(v.tracks[0], 1, 5)
                    if got and (got[0].width, got[0].height) != (384, 216):  # not the slate
                        frames.append(got[0])
                assert len(frames) == 10
                w, h = svc.source.width, svc.source.height
                assert (frames[-1].width, frames[-1].height) == (2 * w, 2 * h)
                # the publisher stops: back to "no source"
                await page.click("#stop")
                deadline = time.monotonic() + 10
                while svc.source.state == "live" and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                assert svc.source.state == "no source" and not svc.sessions.publishers
                await v.close(http, srv.url)
            await browser.close()
    finally:
        await srv.close()


@pytest.mark.timeout(150)
async def test_the_pages_take_their_token_from_the_fragment_and_say_when_they_have_none(
    tmp_path,
):
    pw = _playwright()
    from stream.auth import Role

    from .rtc import with_auth

    cfg, auth = with_auth(small_config(**{"source.uri": "webrtc"}), tmp_path)
    srv = await start_server(cfg)
    svc = srv.service
    try:
        async with pw.async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    *ARGS,
                    "--use-fake-device-for-media-stream",
                    "--use-fake-ui-for-media-stream",
                ],
            )
            page = await browser.new_page()
            await page.goto(f"{srv.url}/")  # no token: a refusal a person can act on
            await wait_for(
                page,
                "document.querySelector('#status').textContent.includes('401')",
                timeout=20_000,
            )
            assert "#token=" in await page.inner_text("#status")
            # a publisher's token on /publish; a player's on the viewer page
            pub = await browser.new_page()
            await pub.goto(f"{srv.url}/publish#token={auth.mint(Role.PUBLISHER, 600)}")
            await pub.select_option("#size", "320x180")
            await pub.click("#camera")
            deadline = time.monotonic() + 30
            while not svc.sessions.publishers and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert svc.sessions.publishers, await pub.inner_text("#status")
            page = await browser.new_page()  # (a new fragment alone does not reload a page)
            await page.goto(f"{srv.url}/#token={auth.mint(Role.PLAYER, 600)}")
            await wait_for(
                page,
                "window.framesmith && window.framesmith.stats.framesDecoded > 10",
                timeout=40_000,
            )
            assert "token" not in page.url  # taken out of the address bar
            assert await page.is_disabled("#mode")  # only admins switch modes
            (viewer,) = svc.sessions.viewers
            assert viewer.role is Role.PLAYER
            await browser.close()
    finally:
        await srv.close()

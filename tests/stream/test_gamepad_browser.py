"""The viewer page in headless Chromium sends a pad and touch to the server: an init script
stands in for the Gamepad API (no pad in CI), the page reads it once a frame and sends its
state on change only; taps, drags and two-finger scrolls become mouse events. What arrives is
what the server's channel checked and handed to the service."""

from __future__ import annotations

import asyncio

import pytest

from .rtc import start_server, viewer_page_config
from .test_viewer_browser import ARGS, CHROMIUM, _playwright, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.gpu]

FAKE_PAD = """
(() => {
  const buttons = Array.from({length: 17}, () => ({pressed: false, touched: false, value: 0}));
  const pad = {id: "Fake Pad (STANDARD GAMEPAD)", index: 0, connected: true,
               mapping: "standard", buttons, axes: [0, 0, 0, 0], timestamp: 0};
  window.__pad = pad;
  window.__press = (i, v) => { buttons[i] = {pressed: v >= 0.5, touched: v > 0, value: v}; };
  navigator.getGamepads = () => [pad, null, null, null];
})();
"""


@pytest.mark.timeout(150)
async def test_the_page_sends_a_pads_changes_and_touch_as_mouse_events():
    pw = _playwright()
    srv = await start_server(viewer_page_config())
    got: list = []
    on_input = srv.service.on_input

    def record(event, session=""):
        got.append(event)
        return on_input(event, session)

    srv.service.on_input = record  # the channel calls its host's on_input: what arrives
    try:
        async with pw.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            ctx = await browser.new_context(viewport={"width": 1000, "height": 560}, has_touch=True)
            await ctx.add_init_script(FAKE_PAD)
            page = await ctx.new_page()
            await page.goto(srv.url + "/")
            await wait_for(page, "window.framesmith.pads && window.framesmith.pads.running", 30_000)
            await wait_for(page, "document.getElementById('main').videoWidth > 0", 30_000)
            await asyncio.sleep(0.5)  # a pad at rest sends nothing
            assert [e for e in got if e.kind == "gamepad"] == []
            await page.evaluate("() => { window.__press(15, 1); window.__press(0, 1); }")
            await wait_for(page, "window.framesmith.pads.sent >= 1", 10_000)
            await asyncio.sleep(0.5)  # many frames, one state: one message
            pads = [e for e in got if e.kind == "gamepad"]
            assert len(pads) == 1, pads
            ev = pads[0]
            assert (ev.index, ev.pad_id) == (0, "Fake Pad (STANDARD GAMEPAD)")
            assert ev.buttons[15] == 1.0 and ev.buttons[0] == 1.0 and ev.axes == (0, 0, 0, 0)
            await page.evaluate("() => { window.__pad.axes[0] = 0.75; window.__press(0, 0); }")
            await wait_for(page, "window.framesmith.pads.sent >= 2", 10_000)
            await asyncio.sleep(0.2)
            pads = [e for e in got if e.kind == "gamepad"]
            assert pads[-1].axes[0] == 0.75 and pads[-1].buttons[0] == 0.0
            # the pad goes away: its neutral state is sent (the server lets go of its keys)
            await page.evaluate("() => { navigator.getGamepads = () => [null, null, null, null]; }")
            await wait_for(
                page,
                "window.framesmith.pads.sent >= 2 && !window.framesmith.pads.last.size",
                10_000,
            )
            await asyncio.sleep(0.2)
            last = [e for e in got if e.kind == "gamepad"][-1]
            assert not any(last.buttons) and not any(last.axes)
            # touch: a tap clicks where the finger was
            box = await page.locator("#main").bounding_box()
            n = len(got)
            await page.touchscreen.tap(
                box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.5
            )
            await asyncio.sleep(0.5)
            kinds = [e.kind for e in got[n:]]
            assert kinds == ["mousemove", "mousedown", "mouseup"], kinds
            down = got[n + 1]
            assert abs(down.x - 0.25) < 0.02 and abs(down.y - 0.5) < 0.02 and down.button == 0
            # a drag moves, two fingers scroll (CDP touch events: playwright taps only)
            cdp = await ctx.new_cdp_session(page)
            x0, y0 = box["x"] + 100, box["y"] + 100

            async def touch(kind: str, points: list[tuple[float, float]]) -> None:
                pts = [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]
                await cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": pts})

            n = len(got)
            await touch("touchStart", [(x0, y0)])
            for i in range(1, 6):
                await touch("touchMove", [(x0 + 20 * i, y0)])
                await asyncio.sleep(0.03)
            await touch("touchEnd", [])
            await asyncio.sleep(0.5)
            drag = got[n:]
            assert drag and {e.kind for e in drag} == {"mousemove"}, [e.kind for e in drag]
            assert drag[-1].x > drag[0].x
            n = len(got)
            await touch("touchStart", [(x0, y0 + 100), (x0 + 50, y0 + 100)])
            for i in range(1, 4):
                await touch("touchMove", [(x0, y0 + 100 - 15 * i), (x0 + 50, y0 + 100 - 15 * i)])
                await asyncio.sleep(0.03)
            await touch("touchEnd", [])
            await asyncio.sleep(0.5)
            wheel = [e for e in got[n:] if e.kind == "wheel"]
            assert wheel and all(e.dy > 0 for e in wheel), [(e.kind, e.dy) for e in got[n:]]
            assert not [e for e in got[n:] if e.kind == "mousedown"]
            await browser.close()
    finally:
        await srv.close()

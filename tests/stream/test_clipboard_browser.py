"""The viewer page's clipboard in headless Chromium against an X display (Xvfb) with `[input]
clipboard = true`: Ctrl+V on the picture sends the browser's clipboard text, which xclip (a
client we did not write) then reads from the display, followed by the V press; a copy made
in X with xclip reaches the page and the browser's clipboard."""

from __future__ import annotations

import asyncio

import pytest

from stream.tools.xvfb import Xvfb

from .rtc import small_config, start_server
from .test_clipboard import xclip_in, xclip_out
from .test_viewer_browser import ARGS, CHROMIUM, _playwright, wait_for
from .xhelpers import needs_xvfb

pytestmark = [pytest.mark.browser, pytest.mark.gpu, needs_xvfb]


@pytest.mark.timeout(150)
async def test_the_page_pastes_into_x_and_gets_x_copies():
    pw = _playwright()
    with Xvfb(320, 180) as x:
        cfg = small_config(**{"source.uri": f"x11:{x.display}", "input.clipboard": True})
        srv = await start_server(cfg)
        keys: list = []
        on_input = srv.service.on_input

        def record(event, session=""):
            keys.append((event.kind, event.code))
            return on_input(event, session)

        srv.service.on_input = record
        p = None
        try:
            async with pw.async_playwright() as play:
                browser = await play.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=ARGS
                )
                ctx = await browser.new_context(viewport={"width": 800, "height": 500})
                await ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=srv.url)
                page = await ctx.new_page()
                await page.goto(srv.url + "/")
                await wait_for(page, "window.framesmith.clipboard.enabled", 30_000)
                await wait_for(page, "document.getElementById('main').videoWidth > 0", 30_000)
                await page.click("#stage")  # focus (and control: the first player's input)
                await page.evaluate("() => navigator.clipboard.writeText('from the browser ✓')")
                await page.keyboard.press("Control+V")
                await wait_for(page, "window.framesmith.clipboard.sent === 1", 10_000)
                deadline = asyncio.get_running_loop().time() + 10
                while srv.service.clipboard.x.pasted < 1:
                    assert asyncio.get_running_loop().time() < deadline, keys
                    await asyncio.sleep(0.05)
                assert await asyncio.to_thread(xclip_out, x.display) == "from the browser ✓"
                # the paste came before its V press, which came as a key
                assert ("clipboard", "") in keys and ("keydown", "KeyV") in keys
                assert keys.index(("clipboard", "")) < keys.index(("keydown", "KeyV"))
                p = xclip_in(x.display, "copied in X ✓")
                await wait_for(
                    page, "window.framesmith.clipboard.lastCopy === 'copied in X ✓'", 10_000
                )
                got = await page.evaluate("() => navigator.clipboard.readText()")
                assert got == "copied in X ✓"
                await browser.close()
        finally:
            if p is not None:
                p.kill()
                p.wait(5)
            await srv.close()

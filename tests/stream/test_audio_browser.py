"""The viewer page plays the game's sound (issue 26) in headless Chromium: it asks for audio,
gets the track, unmutes it on a click and its level meter moves with the test beep; with a
source that has no audio the page plays its video and says "no sound"."""

from __future__ import annotations

import pytest

from .rtc import small_config, start_server
from .test_viewer_browser import ARGS, CHROMIUM, _playwright, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.gpu]


def page_config(audio: str):
    return small_config(
        **{"source.width": 320, "source.height": 180, "source.fps": 30.0, "audio.source": audio}
    )


@pytest.mark.timeout(150)
async def test_page_unmutes_and_meters_the_game_sound() -> None:
    pw = _playwright()
    srv = await start_server(page_config("beep"))
    try:
        async with pw.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = await browser.new_page()
            await page.goto(srv.url + "/")
            await wait_for(page, "window.framesmith.sound.stream !== null", timeout=30_000)
            assert await page.inner_text("#sound") == "unmute"
            assert await page.evaluate("document.getElementById('sound-out').muted")
            await page.click("#sound")
            assert await page.inner_text("#sound") == "mute"
            assert not await page.evaluate("document.getElementById('sound-out').muted")
            # the beep (0.5 of full scale, 100 ms a second) moves the meter
            await wait_for(page, "window.framesmith.sound.peak > 0.1", timeout=20_000)
            await wait_for(page, "document.getElementById('level').value > 0.5", timeout=20_000)
            assert len(srv.service.audio.tracks) == 1
            await browser.close()
    finally:
        await srv.close()


@pytest.mark.timeout(150)
async def test_page_without_sound_plays_its_video() -> None:
    pw = _playwright()
    srv = await start_server(page_config("none"))
    try:
        async with pw.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(srv.url + "/")
            await wait_for(
                page,
                "document.getElementById('main').videoWidth > 0"
                " && document.getElementById('main').currentTime > 0",
                timeout=30_000,
            )
            assert await page.inner_text("#sound") == "no sound"
            assert await page.evaluate("document.getElementById('sound').disabled")
            assert errors == []
            await browser.close()
    finally:
        await srv.close()

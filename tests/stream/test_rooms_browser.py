"""A room's viewer page in headless Chromium (issue 31): the page at /rooms/b/ reaches room b's
WHEP endpoint by its page-relative URL, plays room b's picture and sends its input to room
b's game only, with a token for room b."""

from __future__ import annotations

import asyncio
import time

import pytest

from stream.auth import Role
from stream.config import RoomConfig

from .rtc import small_config, start_server, with_auth
from .test_viewer_browser import ARGS, CHROMIUM, _playwright, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.gpu]


@pytest.mark.timeout(180)
async def test_room_page_plays_its_room_and_drives_its_game(tmp_path):
    pw = _playwright()
    rooms = [
        RoomConfig(name="a", source="testsrc"),  # 160x90: 320x180 out
        RoomConfig(name="b", source="testsrc", width=128, height=72),  # 256x144 out
    ]
    cfg, auth = with_auth(small_config().model_copy(update={"rooms": rooms}), tmp_path)
    srv = await start_server(cfg)
    room_a, room_b = srv.process.rooms["a"], srv.process.rooms["b"]
    try:
        async with pw.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = await browser.new_page(viewport={"width": 800, "height": 500})
            token = auth.mint(Role.PLAYER, 600, rooms=["b"])
            await page.goto(f"{srv.url}/rooms/b/#token={token}")
            await wait_for(
                page,
                "() => { const v = document.getElementById('main');"
                " return v.videoWidth > 0 && v.currentTime > 0; }",
                timeout=60_000,
            )
            size = await page.evaluate(
                "() => [document.getElementById('main').videoWidth,"
                " document.getElementById('main').videoHeight]"
            )
            assert size == [256, 144]  # room b's source, not room a's
            assert len(room_b.sessions.viewers) == 1 and not room_a.sessions.viewers
            box = await page.locator("#main").bounding_box()
            await page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
            await page.keyboard.press("KeyD")
            deadline = time.monotonic() + 20
            while room_b.source.scene.last_key != "d" and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert room_b.source.scene.last_key == "d"
            assert room_a.input_events == 0 and room_a.source.scene.last_key != "d"
            await page.close(run_before_unload=True)
            deadline = time.monotonic() + 5
            while room_b.sessions.viewers and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not room_b.sessions.viewers, "the page left without its DELETE"
            await browser.close()
    finally:
        await srv.close()

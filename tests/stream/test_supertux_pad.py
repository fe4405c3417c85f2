"""A pad plays a real game: SuperTux (Debian's supertux package) under Xvfb, served by an x11
source, played by a real aiortc player's "gamepad" messages in `keys` mode. What the game read
comes from the game itself: its demo recorder (--record-demo) writes, every logic frame, the
six controls it holds (left, right, up, down, jump, action), one byte each. Skipped where
SuperTux is not installed (apt-get install supertux)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from Xlib import X

from stream.tools.xvfb import Xvfb
from stream.xlib_tables import open_display

from .rtc import small_config, start_server, whep
from .xhelpers import need, needs_xvfb

SUPERTUX = "/usr/games/supertux2"
LEVEL = "/usr/share/games/supertux2/levels/world1/welcome_antarctica.stl"
pytestmark = [
    needs_xvfb,
    pytest.mark.gpu,
    pytest.mark.skipif(
        not Path(SUPERTUX).exists(), reason="no SuperTux (apt-get install supertux)"
    ),
]
RIGHT, A, START = 15, 0, 9
CONTROLS = ("left", "right", "up", "down", "jump", "action")


def pad(*pressed: int) -> str:
    buttons = [1.0 if i in pressed else 0.0 for i in range(17)]
    msg = {"type": "gamepad", "index": 0, "id": "Test Pad (STANDARD GAMEPAD)"}
    return json.dumps({**msg, "buttons": buttons, "axes": [0, 0, 0, 0], "t": time.time() * 1000})


def black_share(display: str) -> float:
    """The share of black pixels on the screen: the level's intro is black with a line of
    text (and a bare Xvfb's root a black and white weave), the level a picture."""
    d = open_display(display)
    try:
        root = d.screen().root
        g = root.get_geometry()
        data = root.get_image(0, 0, g.width, g.height, X.ZPixmap, 0xFFFFFFFF).data
        pixels = [data[i : i + 3] for i in range(0, len(data), 4 * 97)]
        return sum(p == b"\0\0\0" for p in pixels) / len(pixels)
    finally:
        d.close()


def demo_frames(path: Path) -> list[set[str]]:
    """The controls held in each logic frame of a SuperTux demo (after its seed line)."""
    data = path.read_bytes()
    body = data[data.index(0) + 1 :]
    return [
        {name for name, b in zip(CONTROLS, body[i : i + 6], strict=True) if b}
        for i in range(0, len(body) - 5, 6)
    ]


@pytest.mark.timeout(240)
async def test_a_pad_walks_and_jumps_tux(tmp_path):
    with Xvfb(640, 480) as x:
        env = {
            **os.environ,
            "DISPLAY": x.display,
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path),
            "SDL_AUDIODRIVER": "dummy",
        }
        demo = tmp_path / "demo"
        args = ["--window", "--geometry", "640x480", "--renderer", "sdl", "--disable-sound"]
        game = subprocess.Popen(
            [SUPERTUX, *args, "--disable-music", "--record-demo", str(demo), LEVEL],
            env=env,
            stdout=(tmp_path / "supertux.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        srv = None
        try:
            # no window manager: give the game the focus as one would (SDL ignores the
            # PointerRoot focus of a bare Xvfb)
            await asyncio.to_thread(
                subprocess.run,
                [need("xdotool"), "search", "--sync", "--name", "SuperTux", "windowfocus"],
                env=env,
                timeout=120,
                check=True,
            )
            srv = await start_server(
                small_config(**{"source.uri": f"x11:{x.display}", "source.fps": 5.0})
            )
            async with aiohttp.ClientSession() as http:
                v = await whep(http, srv.url, datachannel=True)
                while v.channel.readyState != "open":
                    await asyncio.sleep(0.05)
                deadline = time.monotonic() + 120
                while await asyncio.to_thread(black_share, x.display) > 0.2:  # the intro
                    assert time.monotonic() < deadline and game.poll() is None, "no level"
                    v.channel.send(pad(START))  # Start (Return) ends the intro
                    await asyncio.sleep(0.2)
                    v.channel.send(pad())
                    await asyncio.sleep(1.0)
                v.channel.send(pad(RIGHT))  # walk right
                await asyncio.sleep(3.0)
                v.channel.send(pad(RIGHT, A))  # and jump
                await asyncio.sleep(1.0)
                v.channel.send(pad())
                await asyncio.sleep(1.0)
                stats = srv.service.stats()["input"]
                assert stats["refused"] == {} and stats["gamepad"]["keys_held"] == 0
                await v.close(http, srv.url)
        finally:
            if srv is not None:
                await srv.close()
            game.send_signal(signal.SIGINT)  # SDL_QUIT: a clean exit writes the demo out
            try:
                game.wait(30)
            except subprocess.TimeoutExpired:
                game.kill()
                game.wait(5)
    frames = demo_frames(demo)
    walked = [f for f in frames if f == {"right"}]
    jumped = [f for f in frames if "jump" in f]
    print(f"SuperTux read {len(frames)} frames: right {len(walked)}, right+jump {len(jumped)}")
    # letting go releases the mapped keys one XTEST event apart: a loaded X server can let the
    # game read one tick between them (jump without right, once)
    assert len(walked) >= 5 and jumped and sum("right" not in f for f in jumped) <= 1, jumped
    assert not any(f & {"left", "up", "down", "action"} for f in frames)
    assert frames[-1] == set()  # let go at the end

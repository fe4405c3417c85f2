"""The x11 source against a real Xvfb and real X clients: the picture, the capture stage, a
display that changes size, an X server that dies and comes back, and the capture's CPU."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from stream.sources import SourceState, X11Source, open_source
from stream.sources.xshm import XServerLost, XShmCapture
from stream.tools.xvfb import Xvfb

from ..xhelpers import counter_of, game, need, needs_xvfb

pytestmark = [needs_xvfb]


async def frames_of(src: X11Source, n: int, timeout_s: float = 20.0) -> list:
    out = []
    it = src.frames()
    try:
        async with asyncio.timeout(timeout_s):
            async for f in it:
                out.append(f)
                if len(out) == n:
                    break
    finally:
        await it.aclose()
    return out


def test_uri_names_the_display(monkeypatch):
    src = open_source("x11::7", width=320, height=180, fps=30)
    assert isinstance(src, X11Source) and src.display == ":7"
    monkeypatch.setenv("DISPLAY", ":9")
    assert open_source("x11", width=320, height=180, fps=30).display == ":9"
    monkeypatch.delenv("DISPLAY")
    with pytest.raises(ValueError, match="needs a display"):
        open_source("x11", width=320, height=180, fps=30)


def test_a_display_that_is_not_there_is_an_error_not_an_exit():
    with pytest.raises(XServerLost, match="cannot open X display"):
        XShmCapture(":4093")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("on_change", [True, False], ids=["on-change", "tick"])
async def test_captures_a_real_x_client_and_reports_the_capture_stage(tmp_path, on_change):
    xdotool = need("xdotool")
    with game(tmp_path) as (x, app):
        src = X11Source(x.display, fps=30, on_change=on_change)
        try:
            frames = await frames_of(src, 3)
            f = frames[-1]
            assert (f.width, f.height, f.format.name) == (320, 180, "yuv420p")
            assert counter_of(f) == 0
            meta = src.meta(f.pts)
            assert meta is not None and meta.stages["capture"] > 0
            assert meta.t_src <= time.time()
            assert src.state is SourceState.LIVE and src.info()["shm"] is True
            assert src.info()["grab"] == ("on change" if on_change else "tick")
            # xdotool (a client we did not write) clicks; the app's counter shows it
            env = {"DISPLAY": x.display}
            subprocess.run([xdotool, "mousemove", "250", "40", "click", "1"], env=env, check=True)
            app.wait_for(lambda e: e["type"] == "button", 10)
            later = await frames_of(src, 3)
            assert counter_of(later[-1]) == 1
        finally:
            await src.close()


@pytest.mark.timeout(90)
async def test_x_server_gone_shows_a_slate_and_comes_back(tmp_path, caplog):
    x = Xvfb(320, 180)
    x.start()
    src = X11Source(x.display, fps=15)
    it = src.frames()
    try:
        async with asyncio.timeout(60):
            await anext(it)
            assert src.state is SourceState.LIVE
            x.kill()  # SIGKILL: libX11 would exit() this process without the exit handler
            while src.state is not SourceState.ERROR:
                await anext(it)
            assert f"X server {x.display} went away" in src.error and "slate" in src.error
            slate = await anext(it)  # frames keep coming while the display is away
            assert (slate.width, slate.height) == (320, 180)
            assert any("went away" in r.getMessage() for r in caplog.records)
            again = Xvfb(320, 180, display=x.display)
            again.start()
            try:
                while src.state is not SourceState.LIVE:
                    await anext(it)
                f = await anext(it)
                assert (f.width, f.height) == (320, 180) and src.info()["lost"] == 1
            finally:
                again.stop()
    finally:
        await it.aclose()
        await src.close()
        x.stop()


@pytest.mark.timeout(60)
async def test_follows_a_display_that_changes_size(tmp_path):
    # Xvfb's RandR range is fixed at start: Xtigervnc (no VNC client needed) can resize
    vnc = need("Xtigervnc")
    xrandr = need("xrandr")
    display = ":4071"
    proc = subprocess.Popen(
        [vnc, display, "-geometry", "640x360", "-depth", "24", "-SecurityTypes", "None",
         "-localhost", "-rfbport", "0", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    src = X11Source(display, fps=15)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if subprocess.run([xrandr, "-d", display], capture_output=True).returncode == 0:
                break
            await asyncio.sleep(0.2)
        assert {(f.width, f.height) for f in (await frames_of(src, 2))} == {(640, 360)}
        env = {"DISPLAY": display}
        subprocess.run([xrandr, "-s", "1280x720"], env=env, check=True, capture_output=True)
        sizes = {(f.width, f.height) for f in await frames_of(src, 4)}
        assert (1280, 720) in sizes
        subprocess.run([xrandr, "-s", "640x480"], env=env, check=True, capture_output=True)
        assert (await frames_of(src, 4))[-1].width == 640
    finally:
        await src.close()
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_capture_cpu_at_640x360_30fps_is_within_a_frame_interval(tmp_path):
    """The issue's bound: capture costs at most one frame interval of CPU per frame at
    640x360@30 (measured: about 2 ms a frame, 5-6 % of a core; README figure)."""
    with game(tmp_path, 640, 360) as (x, _app):
        src = X11Source(x.display, fps=30, on_change=False)  # every tick: 30 grabs a second
        try:
            frames = await frames_of(src, 90)
        finally:
            await src.close()
        info = src.info()
        print("x11 capture 640x360@30:", {k: info[k] for k in info if k.startswith("capture")})
        assert len(frames) == 90 and (frames[-1].width, frames[-1].height) == (640, 360)
        assert info["capture_cpu_ms_mean"] < 1000 / 30
        assert info["capture_cpu_share"] < 1.0

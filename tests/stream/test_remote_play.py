"""Remote play end to end: an X display (Xvfb + our input app) served through the pipeline to
real WebRTC viewers (aiortc), whose data-channel input reaches the X client and changes what
is captured; refusals, control hand-over and a vanished viewer's held keys."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

import infer

from .rtc import nearest_upscaler, recv_frames, small_config, start_server, whep
from .xhelpers import counter_of, game, needs_xvfb

pytestmark = [needs_xvfb, pytest.mark.gpu]
ROOT = Path(__file__).resolve().parents[2]


def x11_config(display: str, **over):
    return small_config(**{"source.uri": f"x11:{display}", "source.fps": 15.0, **over})


async def channel_open(v, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while v.channel.readyState != "open":
        assert time.monotonic() < deadline, "the data channel did not open"
        await asyncio.sleep(0.05)


async def message(v, pred, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        for raw in v.messages:
            m = json.loads(raw)
            if pred(m):
                return m
        assert time.monotonic() < deadline, "no such message"
        await asyncio.sleep(0.05)


def send(v, **msg) -> None:
    v.channel.send(json.dumps({"type": "input", **msg}))


async def counter_reaches(v, want: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        for f in await recv_frames(v.tracks[0], 3, 5):
            seen = counter_of(f)
            if seen == want:
                return
    raise AssertionError(f"the input counter never showed {want} (last read {seen})")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["model", "bilinear"])
async def test_viewer_sees_the_display_at_2x_and_its_input_changes_it(tmp_path, mode):
    with game(tmp_path) as (x, app):
        if mode == "model":  # a real CNN graph through the engine (nearest-neighbour weights)
            cfg = x11_config(x.display, **{"model.mode": "model"})
            srv = await start_server(cfg, infer.load(nearest_upscaler()), "nearest_x2")
        else:
            srv = await start_server(x11_config(x.display))
        try:
            async with aiohttp.ClientSession() as http:
                v = await whep(http, srv.url, datachannel=True)
                frames = (await recv_frames(v.tracks[0], 12, 40))[4:]
                assert {(f.width, f.height) for f in frames} == {(640, 360)}
                assert [counter_of(f) for f in frames].count(0) >= 0.8 * len(frames)
                await channel_open(v)
                hello = await message(v, lambda m: m["type"] == "hello")
                assert hello["source"] == "x11"
                ctl = await message(v, lambda m: m["type"] == "control")
                assert ctl["allowed"] and ctl["controller"] == "none"
                send(v, kind="mousedown", button=0, x=0.75, y=0.25, id=1, t=time.time() * 1000)
                send(v, kind="mouseup", button=0, x=0.75, y=0.25)
                send(v, kind="keydown", code="KeyD", key="d", id=2)
                send(v, kind="keyup", code="KeyD", key="d")
                click = await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "button", 10)
                assert (click["button"], click["x"], click["y"]) == (1, 240, 45)
                key = await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "key", 10)
                assert key["keysym"] == ord("d")
                await counter_reaches(v, 2)
                ack = await message(v, lambda m: m["type"] == "input_ack" and m["id"] == 1)
                assert ack["ok"] and ack["t_injected"] >= ack["t_recv"]
                stats = srv.service.stats()
                assert stats["input"]["x11_injected"] == 4 and stats["input"]["controller"]
                assert stats["source"]["kind"] == "x11" and stats["source"]["capture_ms_mean"]
                frame_msg = await message(v, lambda m: m["type"] == "frame")
                assert "capture" in frame_msg["stages"]
                await v.close(http, srv.url)
        finally:
            await srv.close()


@pytest.mark.timeout(90)
async def test_bad_input_and_viewers_without_the_player_role_are_refused_harmlessly(
    tmp_path, monkeypatch
):
    with game(tmp_path) as (x, app):
        srv = await start_server(x11_config(x.display))
        try:
            async with aiohttp.ClientSession() as http:
                v = await whep(http, srv.url, datachannel=True)
                await recv_frames(v.tracks[0], 3, 30)
                await channel_open(v)
                send(v, kind="mousedown", button=0, x=1.5, y=0.5, id=10)  # out of range
                send(v, kind="mousemove", x=-3, y=2)
                send(v, kind="keydown", code="KeyNope", key="Nope", id=11)  # unknown key
                send(v, kind="keydown", code="KeyA", key="a" * 500, id=12)
                send(v, kind="launch_missiles", id=13)
                # the auth hook says no: a viewer without the player role
                monkeypatch.setattr(srv.service, "can_control", lambda session: False)
                send(v, kind="mousedown", button=0, x=0.5, y=0.5, id=14)
                send(v, kind="keydown", code="KeyB", key="b", id=15)
                acks = {}
                for i in range(10, 16):
                    acks[i] = await message(v, lambda m, i=i: m.get("id") == i)
                assert not any(a["ok"] for a in acks.values())
                assert "out of range" in acks[10]["reason"]
                assert "unknown key" in acks[11]["reason"]
                assert "at most 32" in acks[12]["reason"]
                assert "kind must be" in acks[13]["reason"]
                assert "player role" in acks[14]["reason"] and "player role" in acks[15]["reason"]
                state = await message(v, lambda m: m["type"] == "control")
                assert state["allowed"] is True  # told before the hook changed
                await asyncio.sleep(0.5)
                assert [e for e in app.events() if e["type"] in ("button", "key")] == []
                # the session lives on and the picture is untouched
                frames = await recv_frames(v.tracks[0], 5, 20)
                assert frames and counter_of(frames[-1]) == 0
                info = srv.service.stats()["sessions"][0]
                assert info["input_refused"] == 7
                assert srv.service.stats()["input"]["refused"] == {"role": 2}
                await v.close(http, srv.url)
        finally:
            await srv.close()


@pytest.mark.timeout(90)
async def test_one_player_controls_and_take_over_releases_the_previous_player(tmp_path):
    with game(tmp_path) as (x, app):
        srv = await start_server(x11_config(x.display))
        try:
            async with aiohttp.ClientSession() as http:
                a = await whep(http, srv.url, datachannel=True)
                b = await whep(http, srv.url, datachannel=True)
                await channel_open(a)
                await channel_open(b)
                send(a, kind="keydown", code="KeyW", key="w", id=1)  # a takes control, holds W
                await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "key", 10)
                send(b, kind="keydown", code="KeyE", key="e", id=2)
                ack = await message(b, lambda m: m.get("id") == 2)
                assert not ack["ok"] and "another player has control" in ack["reason"]
                # hand-over: b takes control; a is told and its held W is let go
                b.channel.send(json.dumps({"type": "control", "take": True}))
                await message(b, lambda m: m["type"] == "control" and m["you"])
                await message(a, lambda m: m["type"] == "control" and m["controller"] == "other")
                up = await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "keyup", 10)
                assert up["keycode"] == 25  # W
                send(b, kind="keydown", code="KeyE", key="e", id=3)
                assert (await message(b, lambda m: m.get("id") == 3))["ok"]
                keys = await asyncio.to_thread(
                    app.wait_for, lambda e: e["type"] == "key" and e["keysym"] == ord("e"), 10
                )
                assert keys["counter"] == 2
                send(a, kind="keyup", code="KeyW", key="w", id=4)
                assert not (await message(a, lambda m: m.get("id") == 4))["ok"]
                await a.close(http, srv.url)
                await b.close(http, srv.url)
        finally:
            await srv.close()


VIEWER = """
import asyncio, json, sys
import aiohttp
from tests.stream.rtc import whep

async def main(url):
    async with aiohttp.ClientSession() as http:
        v = await whep(http, url, datachannel=True)
        while v.channel.readyState != "open":
            await asyncio.sleep(0.05)
        for msg in ({"kind": "keydown", "code": "KeyS", "key": "s"},
                    {"kind": "mousedown", "button": 0, "x": 0.9, "y": 0.1}):
            v.channel.send(json.dumps({"type": "input", **msg}))
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.timeout(90)
async def test_keys_held_by_a_viewer_that_vanishes_are_released(tmp_path):
    with game(tmp_path) as (x, app):
        srv = await start_server(x11_config(x.display))
        viewer = subprocess.Popen(
            [sys.executable, "-c", VIEWER, srv.url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            line = await asyncio.wait_for(asyncio.to_thread(viewer.stdout.readline), 30)
            assert line.strip() == b"held"
            await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "button", 10)
            await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "key", 10)
            assert srv.service.injector.keys and srv.service.injector.buttons
            viewer.send_signal(signal.SIGKILL)  # no DELETE, no goodbye: the browser crashed
            t0 = time.monotonic()
            await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "keyup", 20)
            await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "buttonup", 5)
            print(f"released {time.monotonic() - t0:.1f} s after the viewer vanished")
            assert not srv.service.injector.keys and not srv.service.injector.buttons
            assert srv.service.sessions.viewers == [] and srv.service.input.controller is None
        finally:
            viewer.kill()
            viewer.wait(5)
            await srv.close()

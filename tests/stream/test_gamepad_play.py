"""A pad plays a real X client: real aiortc players send "gamepad" messages on the data channel
to a real server capturing an Xvfb (x11 source, `[input] gamepad = "keys"` as "auto" is
without /dev/uinput), and xev, a client we did not write, gets the mapped keys; viewers, bad
messages and floods are refused and counted with the session alive; a remote agent gets the
pad through GET /api/input and maps it on its own display."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from stream.auth import Role
from stream.input.agent import Agent
from stream.input.xtest import XTestInjector
from stream.tools.xvfb import Xvfb

from .rtc import recv_frames, small_config, start_server, whep, with_auth
from .xhelpers import game, need, needs_xvfb

pytestmark = [needs_xvfb, pytest.mark.gpu]
RIGHT, A = 15, 0


def x11_config(display: str, **over):
    return small_config(**{"source.uri": f"x11:{display}", "source.fps": 15.0, **over})


def pad_message(pressed: tuple[int, ...] = (), axes=(0, 0, 0, 0), index: int = 0) -> str:
    buttons = [1.0 if i in pressed else 0.0 for i in range(17)]
    msg = {"type": "gamepad", "index": index, "id": "Test Pad (STANDARD GAMEPAD)"}
    return json.dumps({**msg, "buttons": buttons, "axes": list(axes), "t": time.time() * 1000})


class Xev:
    """xev filling the display (the pointer, at its centre, gives it the keys: no window
    manager, focus PointerRoot); the keysyms of its KeyPress and KeyRelease events."""

    def __init__(self, display: str, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [need("stdbuf"), "-o0", need("xev"), "-geometry", "320x180+0+0", "-event", "keyboard"],
            env={"DISPLAY": display, "PATH": "/usr/bin:/bin"},
            stdout=out.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while "Outer window is" not in out.read_text():
            assert time.monotonic() < deadline and self.proc.poll() is None, "xev never came"
            time.sleep(0.05)

    def events(self) -> list[tuple[str, str]]:
        out = []
        for block in self.out.read_text().split("\n\n"):
            kind = block.lstrip().split(" ", 1)[0]
            m = re.search(r"keysym 0x[0-9a-f]+, ([^)]+)\)", block)
            if m and kind in ("KeyPress", "KeyRelease"):
                out.append((kind, m.group(1)))
        return out

    async def wait_for(self, event: tuple[str, str], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while event not in self.events():
            assert time.monotonic() < deadline, f"{event} never reached xev: {self.events()}"
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


async def channel_open(v, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while v.channel.readyState != "open":
        assert time.monotonic() < deadline, "the data channel did not open"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_a_players_pad_presses_keys_in_an_x_client_and_lets_go_when_it_leaves(tmp_path):
    with Xvfb(320, 180) as x:
        xev = Xev(x.display, tmp_path / "xev.txt")
        srv = await start_server(x11_config(x.display))
        try:
            assert srv.service.pads is not None and srv.service.pads.mode == "keys"
            async with aiohttp.ClientSession() as http:
                v = await whep(http, srv.url, datachannel=True)
                await recv_frames(v.tracks[0], 2, 30)
                await channel_open(v)
                v.channel.send(pad_message((RIGHT,)))  # d-pad right
                await xev.wait_for(("KeyPress", "Right"))
                v.channel.send(pad_message((RIGHT, A)))  # and A
                await xev.wait_for(("KeyPress", "space"))
                v.channel.send(pad_message((A,), (0.8, 0, 0, 0)))  # d-pad up, stick right
                v.channel.send(pad_message((A,), (0.8, 0, 0, 0)))  # the same again: no event
                await asyncio.sleep(0.5)
                assert ("KeyRelease", "Right") not in xev.events()  # the stick holds it
                assert xev.events().count(("KeyPress", "Right")) == 1
                assert len(srv.service.injector.keys) == 2
                await v.close(http, srv.url)  # the player leaves holding Right and space
                await xev.wait_for(("KeyRelease", "Right"))
                await xev.wait_for(("KeyRelease", "space"))
                assert not srv.service.injector.keys
            stats = srv.service.stats()["input"]
            assert stats["gamepad"]["events"] == 4 and stats["gamepad"]["keys_held"] == 0
            assert stats["refused"] == {}
        finally:
            xev.stop()
            await srv.close()


@pytest.mark.timeout(120)
async def test_a_player_losing_control_lets_go_and_the_policy_judges_pad_keys(tmp_path):
    """Another player takes control: the first one's pad keys go up and its pad is refused;
    the new player's pad is judged by the [input] policy like a keyboard (B + Y hold Ctrl and
    Alt: Ctrl+Alt+Left, a desktop's workspace switch, never reaches the display)."""
    B, Y, LEFT = 1, 3, 14
    with Xvfb(320, 180) as x:
        xev = Xev(x.display, tmp_path / "xev.txt")
        srv = await start_server(x11_config(x.display))
        try:
            async with aiohttp.ClientSession() as http:
                a = await whep(http, srv.url, datachannel=True)
                b = await whep(http, srv.url, datachannel=True)
                for v in (a, b):
                    await channel_open(v)
                a.channel.send(pad_message((A,)))  # a takes control, holds space
                await xev.wait_for(("KeyPress", "space"))
                b.channel.send(json.dumps({"type": "control", "take": True}))
                await xev.wait_for(("KeyRelease", "space"))
                assert not srv.service.injector.keys
                a.channel.send(pad_message((RIGHT,)))  # no longer in control: refused
                b.channel.send(pad_message((B, Y)))  # Ctrl and Alt down
                await xev.wait_for(("KeyPress", "Alt_L"))
                b.channel.send(pad_message((B, Y, LEFT)))  # + Left: a blocked chord
                b.channel.send(pad_message(()))
                await xev.wait_for(("KeyRelease", "Alt_L"))
                names = {name for _, name in xev.events()}
                assert "Left" not in names and "Right" not in names, xev.events()
                stats = srv.service.stats()["input"]
                assert stats["refused"].get("not_controller") == 1, stats
                assert stats["x11_blocked"].get("chord", 0) >= 1, stats
                await a.close(http, srv.url)
                await b.close(http, srv.url)
        finally:
            xev.stop()
            await srv.close()


@pytest.mark.timeout(120)
async def test_viewers_bad_pad_messages_and_floods_are_refused_and_counted(tmp_path):
    with Xvfb(320, 180) as x:
        xev = Xev(x.display, tmp_path / "xev.txt")
        cfg, auth = with_auth(x11_config(x.display), tmp_path)
        srv = await start_server(cfg)
        try:
            async with aiohttp.ClientSession() as http:
                watcher = await whep(
                    http, srv.url, datachannel=True, token=auth.mint(Role.VIEWER, 300)
                )
                player = await whep(
                    http, srv.url, datachannel=True, token=auth.mint(Role.PLAYER, 300)
                )
                for v in (watcher, player):
                    await recv_frames(v.tracks[0], 2, 30)
                    await channel_open(v)
                watcher.channel.send(pad_message((A,)))  # a viewer's pad: refused
                good = json.loads(pad_message((A,)))
                malformed = [
                    {**good, "index": 4},
                    {**good, "buttons": good["buttons"][:16]},
                    {**good, "axes": [0, 0, 0, 2]},
                    {**good, "id": "x" * 500},
                    {**good, "buttons": ["1"] * 17},
                ]
                for m in malformed:
                    player.channel.send(json.dumps(m))
                player.channel.send(json.dumps({**good, "axes": [float("nan"), 0, 0, 0]}))
                await asyncio.sleep(1.0)
                by_role = {s.role: s for s in srv.service.sessions.viewers}
                assert by_role[Role.VIEWER].control.counters.refused == {
                    "gamepad: not for the viewer role": 1
                }
                refused = by_role[Role.PLAYER].control.counters.refused
                assert refused == {"gamepad: not a valid event": 6}, refused
                assert xev.events() == []  # nothing reached the game
                # a flood: over the pad's own rate, refused and counted; the mouse's and the
                # keyboard's bucket is untouched by it
                for i in range(600):
                    player.channel.send(pad_message((A,) if i % 2 else ()))
                await asyncio.sleep(1.0)
                flood = refused.get("gamepad: over its rate", 0)
                assert 0 < flood < 600, refused
                mouse_and_keys = by_role[Role.PLAYER].control.input
                assert mouse_and_keys.tokens == mouse_and_keys.burst  # none taken by the pads
                player.channel.send(
                    json.dumps({"type": "input", "kind": "keydown", "code": "KeyQ", "key": "q"})
                )
                await xev.wait_for(("KeyPress", "q"))
                await xev.wait_for(("KeyPress", "space"))
                # both sessions live on
                for v in (watcher, player):
                    assert len(await recv_frames(v.tracks[0], 3, 20)) == 3
                await player.close(http, srv.url)
                await watcher.close(http, srv.url)
        finally:
            xev.stop()
            await srv.close()


@pytest.mark.timeout(60)
async def test_gamepad_off_refuses_pads_with_the_reason():
    srv = await start_server(small_config(**{"input.gamepad": "off"}))
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url, datachannel=True)
            await channel_open(v)
            v.channel.send(pad_message((A,)))
            deadline = time.monotonic() + 10
            while True:
                acks = [json.loads(m) for m in v.messages]
                acks = [m for m in acks if m["type"] == "input_ack"]
                if acks:
                    break
                assert time.monotonic() < deadline, "no refusal came"
                await asyncio.sleep(0.05)
            assert not acks[0]["ok"] and "gamepad" in acks[0]["reason"]
            hello = next(json.loads(m) for m in v.messages if '"hello"' in m)
            assert hello["gamepad"] is False  # the page does not read pads at all
            await v.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.timeout(90)
async def test_a_remote_agent_gets_the_pad_and_maps_it_on_its_display(tmp_path):
    """GET /api/input carries the pad's message itself (not keys the server made of it); the
    agent maps it with its own profile onto its display, and lets go on "release"."""
    with game(tmp_path) as (x, app):
        srv = await start_server(small_config())  # the test scene stands in for a WHIP feed
        inj = XTestInjector(x.display)
        assert inj.ready(10)
        agent = Agent(inj, srv.url, gamepad="keys", gamepad_keys={"a": "KeyZ"})
        try:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(srv.url + "/api/input")
                assert (await ws.receive_json(timeout=10))["type"] == "hello"
                v = await whep(http, srv.url, datachannel=True)
                await channel_open(v)
                v.channel.send(pad_message((A, RIGHT)))
                msg = await ws.receive_json(timeout=10)
                assert msg["type"] == "gamepad" and msg["buttons"][A] == 1.0
                assert msg["session"] and msg["index"] == 0
                agent.handle(msg)
                keys = [
                    await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "key", 5),
                    await asyncio.to_thread(
                        app.wait_for, lambda e: e["type"] == "key" and e["keysym"] == ord("z"), 5
                    ),
                ]
                assert {k["keysym"] for k in keys} == {0xFF53, ord("z")}  # Right, z (its A)
                # the right stick moves the pointer on the agent's event loop while pushed
                v.channel.send(pad_message((A, RIGHT), (0, 0, 0, 1.0)))
                msg = await ws.receive_json(timeout=10)
                agent.handle(msg)
                await asyncio.to_thread(
                    app.wait_for, lambda e: e["type"] == "motion" and e["y"] >= 170, 10
                )
                await v.close(http, srv.url)
                release = await ws.receive_json(timeout=10)
                assert release == {"type": "release", "session": msg["session"]}
                agent.handle(release)
                for k in keys:
                    await asyncio.to_thread(
                        app.wait_for,
                        lambda e, k=k: e["type"] == "keyup" and e["keycode"] == k["keycode"],
                        5,
                    )
                assert not inj.keys and agent.injected == 2
                assert agent.pads.aim == {}
                await ws.close()
        finally:
            inj.close()
            await srv.close()

"""The text clipboard between the controlling player's page and the game's X display, against
a real X server (Xvfb) and a real X client we did not write (xclip): a paste from the page is
what xclip reads, a copy made with xclip reaches the player's data channel; viewers, others
and oversized texts are refused, and the clipboard is off unless `[input] clipboard = true`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import aiohttp
import pytest

from stream.auth import Role
from stream.input import InputError
from stream.input.clipboard import parse_clipboard
from stream.input.xclipboard import XClipboard
from stream.tools.xvfb import Xvfb

from .rtc import recv_frames, small_config, start_server, whep, with_auth
from .xhelpers import need, needs_xvfb

TEXT = "héllo wörld ✓\nsecond line"


def xclip_out(display: str, selection: str = "clipboard") -> str:
    return subprocess.run(
        [need("xclip"), "-o", "-selection", selection],
        env={"DISPLAY": display},
        capture_output=True,
        timeout=10,
        check=True,
    ).stdout.decode()


def xclip_in(display: str, text: str) -> subprocess.Popen:
    """xclip owning CLIPBOARD with `text` (in the foreground: -quiet), until it is killed."""
    p = subprocess.Popen(
        [need("xclip"), "-quiet", "-i", "-selection", "clipboard"],
        env={"DISPLAY": display},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert p.stdin is not None
    p.stdin.write(text.encode())
    p.stdin.close()
    return p


def test_a_paste_is_checked():
    assert parse_clipboard({"text": TEXT}).text == TEXT
    for bad in (None, 7, ["a"], "\ud800", "a\0b", "x" * 3001, "é" * 1501):
        with pytest.raises(InputError):
            parse_clipboard({"type": "clipboard", "text": bad})
    assert parse_clipboard({"text": "x" * 10}, max_bytes=10).text == "x" * 10
    with pytest.raises(InputError, match="at most 9"):
        parse_clipboard({"text": "x" * 10}, max_bytes=9)


@needs_xvfb
@pytest.mark.timeout(60)
def test_x_clipboard_both_ways_with_xclip():
    copies: list[str] = []
    with Xvfb(160, 90) as x:
        clip = XClipboard(x.display, 64, copies.append)
        assert clip.ready(10), clip.error
        try:
            clip.paste("from the page ✓")
            assert xclip_out(x.display) == "from the page ✓"
            assert xclip_out(x.display, "primary") == "from the page ✓"  # middle click too
            with pytest.raises(Exception, match="over 64 bytes"):
                clip.paste("x" * 65)
            p = xclip_in(x.display, "copied in X ✓")
            deadline = time.monotonic() + 10
            while not copies:
                assert time.monotonic() < deadline, "the copy never came"
                time.sleep(0.05)
            assert copies == ["copied in X ✓"]
            p.kill()
            p.wait(5)
            p = xclip_in(x.display, "y" * 65)  # over the limit: counted, not read
            deadline = time.monotonic() + 10
            while not clip.too_big >= 2:
                assert time.monotonic() < deadline, clip.stats()
                time.sleep(0.05)
            assert copies == ["copied in X ✓"]
            p.kill()
            p.wait(5)
            assert clip.stats() == {"pasted": 1, "copied": 1, "too_big": 2}
        finally:
            clip.close()


async def channel_open(v, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while v.channel.readyState != "open":
        assert time.monotonic() < deadline, "the data channel did not open"
        await asyncio.sleep(0.05)


async def hello_of(v, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while not (hello := [m for m in map(json.loads, v.messages) if m["type"] == "hello"]):
        assert time.monotonic() < deadline, "no hello"
        await asyncio.sleep(0.05)
    return hello[0]


def clipboard_messages(v) -> list[str]:
    return [m["text"] for m in map(json.loads, v.messages) if m["type"] == "clipboard"]


@needs_xvfb
@pytest.mark.gpu
@pytest.mark.timeout(120)
async def test_the_players_paste_and_an_x_copy_cross_the_data_channel(tmp_path):
    with Xvfb(160, 90) as x:
        cfg = small_config(
            **{"source.uri": f"x11:{x.display}", "input.clipboard": True},
            **{"input.clipboard_max_bytes": 100},
        )
        cfg, auth = with_auth(cfg, tmp_path)
        srv = await start_server(cfg)
        p = None
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
                hello = await hello_of(player)
                assert hello["clipboard"] is True
                watcher.channel.send(json.dumps({"type": "clipboard", "text": "from a viewer"}))
                player.channel.send(json.dumps({"type": "clipboard", "text": "y" * 101}))
                player.channel.send(json.dumps({"type": "clipboard", "text": TEXT}))
                deadline = time.monotonic() + 10
                while srv.service.clipboard.x.pasted < 1:
                    assert time.monotonic() < deadline, srv.service.stats()["input"]
                    await asyncio.sleep(0.05)
                assert await asyncio.to_thread(xclip_out, x.display) == TEXT
                by_role = {s.role: s for s in srv.service.sessions.viewers}
                assert by_role[Role.VIEWER].control.counters.refused == {
                    "clipboard: not for the viewer role": 1
                }
                stats = srv.service.stats()["input"]
                assert stats["refused"] == {"inject": 1}, stats  # the one over 100 bytes
                assert stats["clipboard"]["too_big"] == 1
                # the other way: an X client copies; the player in control gets it
                p = xclip_in(x.display, "copied in the game")
                deadline = time.monotonic() + 10
                while not clipboard_messages(player):
                    assert time.monotonic() < deadline, "no clipboard message came"
                    await asyncio.sleep(0.05)
                assert clipboard_messages(player) == ["copied in the game"]
                assert clipboard_messages(watcher) == []
                await player.close(http, srv.url)
                await watcher.close(http, srv.url)
        finally:
            if p is not None:
                p.kill()
                p.wait(5)
            await srv.close()


@pytest.mark.gpu
@pytest.mark.timeout(60)
async def test_the_clipboard_is_off_by_default_and_never_reaches_agents():
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(srv.url + "/api/input")
            assert (await ws.receive_json(timeout=10))["type"] == "hello"
            v = await whep(http, srv.url, datachannel=True)
            await channel_open(v)
            hello = await hello_of(v)
            assert hello["clipboard"] is False
            v.channel.send(json.dumps({"type": "clipboard", "text": "secret"}))
            v.channel.send(json.dumps({"type": "input", "kind": "keydown", "code": "KeyA"}))
            got = await ws.receive_json(timeout=10)
            assert got["type"] == "input" and got["kind"] == "keydown"  # not the text
            deadline = time.monotonic() + 10
            while not (
                acks := [m for m in map(json.loads, v.messages) if m["type"] == "input_ack"]
            ):
                assert time.monotonic() < deadline, "the refusal never came"
                await asyncio.sleep(0.05)
            assert "nothing here takes clipboard" in acks[0]["reason"]
            await ws.close()
            await v.close(http, srv.url)
    finally:
        await srv.close()

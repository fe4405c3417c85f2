"""A remote game host: `python -m stream agent` connected to GET /api/input injects the
viewers' input into its own X display (Xvfb + our input app), and lets go when they leave."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import aiohttp
import pytest

from stream.input.agent import input_url, main

from ..rtc import recv_frames, small_config, start_server, whep
from ..xhelpers import game, needs_xvfb


def test_agent_url_from_the_server_url():
    assert input_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/api/input"
    assert input_url("https://h/") == "wss://h/api/input"
    assert input_url("wss://h/api/input") == "wss://h/api/input"
    assert input_url("ws://[::1]:8080") == "ws://[::1]:8080/api/input"
    assert input_url("http://localhost:8080") == "ws://localhost:8080/api/input"
    with pytest.raises(ValueError, match="http"):
        input_url("ftp://h")


@pytest.mark.parametrize(
    "url", ["http://stream.example:8080", "ws://192.0.2.7/api/input", "http://127.0.0.1.nip.io"]
)
def test_agent_refuses_plain_text_to_anything_but_loopback(url, capsys, tmp_path, monkeypatch):
    """It would send a publisher token in the clear: exit 2 with the reason, before it even
    looks for a display (and the token, from a file, never reaches the message)."""
    token = tmp_path / "token"
    token.write_text("SECRET-TOKEN\n")
    monkeypatch.setenv("DISPLAY", ":4242")  # no such display: the URL is refused first
    with pytest.raises(ValueError, match="TLS"):
        input_url(url)
    assert main(["--url", url + "?token=SECRET-TOKEN", "--token-file", str(token)]) == 2
    out = capsys.readouterr().out
    assert "plain text" in out and "https://" in out and "SECRET" not in out


def test_agent_reads_its_token_from_a_file_never_from_argv(capsys, tmp_path):
    assert main(["--url", "https://h", "--token-file", str(tmp_path / "nope")]) == 2
    assert "--token-file" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # no --token: a secret in argv is in the process list
        main(["--url", "https://h", "--token", "T"])


@pytest.mark.timeout(30)
async def test_api_input_is_a_websocket():
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http, http.get(srv.url + "/api/input") as r:
            assert r.status == 426
            assert "WebSocket" in (await r.json())["error"]
    finally:
        await srv.close()


@needs_xvfb
@pytest.mark.gpu
@pytest.mark.timeout(90)
async def test_agent_injects_viewer_input_into_its_display(tmp_path):
    with game(tmp_path) as (x, app):
        srv = await start_server(small_config())  # the test scene stands in for a WHIP feed
        agent = subprocess.Popen(
            [sys.executable, "-m", "stream", "agent", "--display", x.display, "--url", srv.url],
            env={**os.environ, "FRAMESMITH_TOKEN": "unused-until-auth"},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not srv.service.agents.agents:
                assert time.monotonic() < deadline and agent.poll() is None, "agent never came"
                await asyncio.sleep(0.1)
            async with aiohttp.ClientSession() as http:
                v = await whep(http, srv.url, datachannel=True)
                await recv_frames(v.tracks[0], 3, 30)
                while v.channel.readyState != "open":
                    await asyncio.sleep(0.05)
                for msg in (
                    {"kind": "mousedown", "button": 0, "x": 0.25, "y": 0.5},
                    {"kind": "mouseup", "button": 0, "x": 0.25, "y": 0.5},
                    {"kind": "keydown", "code": "KeyJ", "key": "j"},  # held until the viewer goes
                ):
                    v.channel.send(json.dumps({"type": "input", **msg}))
                click = await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "button", 15)
                assert (click["x"], click["y"]) == (80, 90)
                key = await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "key", 10)
                assert key["keysym"] == ord("j")
                assert srv.service.source.scene.cursor == (0.25, 0.5)  # the scene got it too
                await v.close(http, srv.url)  # DELETE: the agent is told to release
                up = await asyncio.to_thread(app.wait_for, lambda e: e["type"] == "keyup", 10)
                assert up["keycode"] == key["keycode"]
            stats = srv.service.stats()["input"]["agents"]
            assert stats["agents"] == 1 and stats["sent"] >= 4 and stats["dropped"] == 0
        finally:
            agent.terminate()
            agent.wait(10)
            await srv.close()

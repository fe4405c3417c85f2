"""Rooms (issue 31): one process, several sources, each with its own viewers and tokens.

Real aiohttp servers over real HTTP, real aiortc WHEP viewers, testsrc sources at tiny sizes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from stream import config as config_mod
from stream.auth import Role, TokenAuthority
from stream.config import RoomConfig

from .rtc import NO_STUN, bearer, recv_frames, small_config, start_server, whep, with_auth

pytestmark = pytest.mark.slow  # several servers and WebRTC sessions: ~10-30 s on a busy host


def rooms_config(tmp_path, *rooms: RoomConfig, auth: bool = True) -> config_mod.Config:
    cfg = small_config().model_copy(update={"rooms": list(rooms)})
    return with_auth(cfg, tmp_path)[0] if auth else cfg


def authority(tmp_path) -> TokenAuthority:
    return TokenAuthority.from_file(tmp_path / "auth.secret")


A = RoomConfig(name="a", source="testsrc")  # 160x90 (the top-level [source]): 320x180 out
B = RoomConfig(name="b", source="testsrc", width=128, height=72)  # 256x144 out


async def test_two_rooms_own_sources_viewers_and_tokens(tmp_path):
    """Each room's viewers get that room's source; a token for one room gets 403 in the
    other and on the process's routes; the default routes are gone on a server with rooms."""
    srv = await start_server(rooms_config(tmp_path, A, B))
    auth = authority(tmp_path)
    tok_a = auth.mint(Role.VIEWER, 120, rooms=["a"])
    tok_b = auth.mint(Role.PLAYER, 120, rooms=["b"])
    admin = auth.mint(Role.ADMIN, 120)
    admin_a = auth.mint(Role.ADMIN, 120, rooms=["a"])
    viewers = []
    try:
        async with aiohttp.ClientSession() as http:
            va = await whep(http, srv.url + "/rooms/a", token=tok_a)
            vb = await whep(http, srv.url + "/rooms/b", token=tok_b)
            viewers += [va, vb]
            assert va.location.startswith("/rooms/a/whep/"), va.location
            fa = await recv_frames(va.tracks[0], 3, 30)
            fb = await recv_frames(vb.tracks[0], 3, 30)
            assert len(fa) == 3 and len(fb) == 3
            assert (fa[-1].width, fa[-1].height) == (320, 180)  # room a's source, x2
            assert (fb[-1].width, fb[-1].height) == (256, 144)  # room b's

            sdp = "v=0\r\n"
            hdr = {"Content-Type": "application/sdp"}
            for url, token in (("/rooms/b/whep", tok_a), ("/rooms/a/whep", tok_b)):
                async with http.post(
                    srv.url + url, data=sdp, headers={**hdr, **bearer(token)}
                ) as r:
                    assert r.status == 403, (url, r.status)
                    assert "not for room" in (await r.json())["error"]
            # the other room's session: neither ended nor trickled by a token for room a
            async with http.delete(srv.url + vb.location, headers=bearer(tok_a)) as r:
                assert r.status == 403
            async with http.get(srv.url + "/rooms/b/api/stats", headers=bearer(admin_a)) as r:
                assert r.status == 403
            async with http.get(srv.url + "/rooms/a/api/stats", headers=bearer(admin_a)) as r:
                assert r.status == 200
                assert (await r.json())["viewers"] == 1
            # the process's routes need a token for every room
            for path in ("/api/rooms", "/metrics"):
                async with http.get(srv.url + path, headers=bearer(admin_a)) as r:
                    assert r.status == 403, path
            async with http.get(srv.url + "/api/rooms", headers=bearer(admin)) as r:
                assert r.status == 200
                rooms = {x["name"]: x for x in (await r.json())["rooms"]}
            assert set(rooms) == {"a", "b"}
            assert rooms["a"]["viewers"] == 1 and rooms["b"]["viewers"] == 1
            assert rooms["a"]["mode"] == "bilinear" and rooms["a"]["source"] == "testsrc"
            # a server with rooms has no default room behind today's routes
            async with http.post(
                srv.url + "/whep", data=sdp, headers={**hdr, **bearer(admin)}
            ) as r:
                assert r.status == 404
            # the pages: each room's, with page-relative URLs (checked in the page's script)
            async with http.get(srv.url + "/rooms/a/") as r:
                assert r.status == 200 and "app.js" in await r.text()
            async with http.get(srv.url + "/rooms/nope/") as r:
                assert r.status == 404
            async with http.get(srv.url + "/rooms/b", allow_redirects=False) as r:
                assert r.status == 308 and r.headers["Location"] == "/rooms/b/"
            async with http.get(srv.url + "/rooms/b/healthz") as r:
                assert (await r.json())["source"]["width"] == 128
            async with http.get(srv.url + "/healthz") as r:
                assert set((await r.json())["rooms"]) == {"a", "b"}

            async with http.delete(srv.url + va.location, headers=bearer(tok_a)) as r:
                assert r.status == 200
            assert len(srv.process.rooms["a"].sessions.viewers) == 0
            assert len(srv.process.rooms["b"].sessions.viewers) == 1
    finally:
        for v in viewers:
            await v.pc.close()
        await srv.close()


async def test_a_token_for_a_room_cannot_reach_the_default_room(tmp_path):
    """Without rooms the one room is "default": a token for room "a" gets 403 there, an
    unscoped one works as before."""
    srv = await start_server(with_auth(small_config(), tmp_path)[0])
    auth = authority(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            hdr = {"Content-Type": "application/sdp"}
            token = auth.mint(Role.VIEWER, 60, rooms=["a"])
            async with http.post(
                srv.url + "/whep", data="v=0\r\n", headers={**hdr, **bearer(token)}
            ) as r:
                assert r.status == 403
            v = await whep(http, srv.url, token=auth.mint(Role.VIEWER, 60))
            await v.close(http, srv.url)
    finally:
        await srv.close()


async def test_rooms_created_and_deleted_while_serving(tmp_path):
    """POST /api/rooms opens and starts a room that viewers join at once; DELETE ends its
    sessions, stops its source and frees its pipelines, leaving the other room serving."""
    srv = await start_server(rooms_config(tmp_path, A))
    auth = authority(tmp_path)
    admin = bearer(auth.mint(Role.ADMIN, 120))
    try:
        async with aiohttp.ClientSession() as http:
            va = await whep(http, srv.url + "/rooms/a", token=auth.mint(Role.VIEWER, 60))
            spec = {"name": "c", "source": "testsrc", "width": 128, "height": 72}
            async with http.post(srv.url + "/api/rooms", json=spec, headers=admin) as r:
                assert r.status == 201, await r.text()
                assert r.headers["Location"] == "/rooms/c/"
            async with http.post(srv.url + "/api/rooms", json=spec, headers=admin) as r:
                assert r.status == 409
            bad = {"name": "d", "source": "testsrc", "model": "/etc/passwd"}
            async with http.post(srv.url + "/api/rooms", json=bad, headers=admin) as r:
                assert r.status == 400
            nofile = {"name": "e", "source": str(tmp_path / "none.mp4")}
            async with http.post(srv.url + "/api/rooms", json=nofile, headers=admin) as r:
                assert r.status == 400 and "no such file" in (await r.json())["error"]
            assert "e" not in srv.process.rooms
            room_c = srv.process.rooms["c"]
            vc = await whep(http, srv.url + "/rooms/c", token=auth.mint(Role.VIEWER, 60))
            assert len(await recv_frames(vc.tracks[0], 3, 30)) == 3
            peers = room_c.sessions.open_peer_connections()
            assert peers == 1

            async with http.delete(srv.url + "/api/rooms/c", headers=admin) as r:
                assert r.status == 204
            assert "c" not in srv.process.rooms
            assert room_c.sessions.open_peer_connections() == 0
            assert not room_c.sessions.by_id and not room_c.encoders and not room_c._pipes
            for _ in range(100):  # the viewer sees its session end (DTLS close / consent)
                if vc.pc.connectionState in ("closed", "failed"):
                    break
                await asyncio.sleep(0.1)
            assert vc.pc.connectionState in ("closed", "failed")
            async with http.get(srv.url + "/api/rooms", headers=admin) as r:
                assert [x["name"] for x in (await r.json())["rooms"]] == ["a"]
            async with http.delete(srv.url + "/api/rooms/c", headers=admin) as r:
                assert r.status == 404
            # room a never noticed
            n = len(await recv_frames(va.tracks[0], 5, 30))
            assert n == 5
            await vc.pc.close()
            await va.close(http, srv.url)
    finally:
        await srv.close()


def test_token_cli_scopes_a_token_to_rooms(tmp_path):
    cfg, auth = with_auth(small_config(), tmp_path)
    path = tmp_path / "serve.toml"
    config_mod.write_toml({"auth": {"secret_file": cfg.auth.secret_file}}, path)
    cmd = [sys.executable, "-m", "stream", "token", "--config", str(path), "--role", "player"]
    out = subprocess.run([*cmd, "--room", "a", "--room", "b"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert auth.verify(out.stdout.strip()).rooms == frozenset({"a", "b"})
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert auth.verify(out.stdout.strip()).rooms is None  # every room, as before
    out = subprocess.run([*cmd, "--room", "A/.."], capture_output=True, text=True)
    assert out.returncode == 2


def test_serve_room_flags_and_config_rooms(tmp_path):
    """--room NAME=SOURCE adds to [[rooms]]; names are checked and must differ."""
    from stream.serve import with_rooms

    path = tmp_path / "serve.toml"
    config_mod.write_toml({"rooms": [{"name": "a", "source": "testsrc", "mode": "edge"}]}, path)
    cfg = with_rooms(config_mod.load(path), ["b=x11::1"])
    assert [(r.name, r.source, r.mode) for r in cfg.rooms] == [
        ("a", "testsrc", "edge"),
        ("b", "x11::1", None),
    ]
    for bad in (["a=testsrc"], ["B=testsrc"], ["noequals"]):
        with pytest.raises(config_mod.ConfigError):
            with_rooms(cfg, bad)


@pytest.mark.timeout(180)
def test_serve_with_room_flags_serves_each_room(tmp_path):
    """`python -m stream serve --room a=testsrc --room b=testsrc` as a user starts it: both
    rooms listed with their own page and health, the default routes gone; SIGINT exits 0."""
    import json
    import os
    import signal
    import urllib.error
    import urllib.request
    from pathlib import Path

    from stream.tools.soak.server import free_port

    port = free_port()
    small = ["--mode", "bilinear", "--width", "64", "--height", "36", "--fps", "5"]
    rooms = ["--room", "a=testsrc", "--room", "b=testsrc"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "serve", *small, *rooms, "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def get(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, b""

    try:
        for _ in range(600):  # the model-free start: a few seconds here, more on a busy host
            try:
                status, body = get("/api/rooms")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        assert status == 200  # loopback, no [auth]: open
        assert [r["name"] for r in json.loads(body)["rooms"]] == ["a", "b"]
        assert get("/rooms/a/")[0] == 200 and get("/rooms/b/healthz")[0] == 200
        assert get("/api/stats")[0] == 404  # no default room behind today's routes
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


async def test_a_tokens_session_cap_counts_every_room(tmp_path):
    """server.max_sessions_per_token holds across rooms: a token for every room with one
    session in room a gets 429 in room b (per room, one token could hold the cap in each)."""
    cfg = small_config(**{"server.max_sessions_per_token": 1}).model_copy(update={"rooms": [A, B]})
    cfg, auth = with_auth(cfg, tmp_path)
    srv = await start_server(cfg)
    token = auth.mint(Role.VIEWER, 60)
    try:
        async with aiohttp.ClientSession() as http:
            va = await whep(http, srv.url + "/rooms/a", token=token)
            pc = RTCPeerConnection(NO_STUN)
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            hdr = {"Content-Type": "application/sdp"} | bearer(token)
            offer = pc.localDescription.sdp
            async with http.post(srv.url + "/rooms/b/whep", data=offer, headers=hdr) as r:
                assert r.status == 429, (r.status, await r.text())
            await pc.close()
            await va.close(http, srv.url)
            vb = await whep(http, srv.url + "/rooms/b", token=token)  # its place is free again
            await vb.close(http, srv.url)
    finally:
        await srv.close()

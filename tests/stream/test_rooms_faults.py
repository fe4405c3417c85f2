"""Rooms kept apart (issue 31): one room's dead source is not another's, and rooms created and
deleted while others serve leave nothing behind (sessions, peers, fds, GPU objects).

Real aiohttp server, real aiortc viewers, testsrc and a real H.264 file at tiny sizes.
"""

from __future__ import annotations

import asyncio
import gc

import aiohttp
import pytest

from stream.auth import Role
from stream.config import RoomConfig
from stream.sources import SourceState

from .clips import make_clip
from .rtc import bearer, recv_frames, small_config, start_server, whep, with_auth

pytestmark = pytest.mark.slow  # WebRTC sessions in several rooms: 20-60 s on a busy host


async def test_a_room_whose_source_dies_leaves_the_others_playing(tmp_path):
    """Room a plays a file that is corrupted under it: when it loops, the reopen fails and
    its source is FAILED; room b's viewer keeps getting frames and /healthz names a only."""
    clip = make_clip(tmp_path / "a.mp4", frames=8, width=128, height=72, audio=False)
    rooms = [
        RoomConfig(name="a", source=str(clip), audio="none"),
        RoomConfig(name="b", source="testsrc"),
    ]
    cfg, auth = with_auth(small_config().model_copy(update={"rooms": rooms}), tmp_path)
    srv = await start_server(cfg)
    room_a = srv.process.rooms["a"]
    try:
        async with aiohttp.ClientSession() as http:
            va = await whep(http, srv.url + "/rooms/a", token=auth.mint(Role.VIEWER, 120))
            vb = await whep(http, srv.url + "/rooms/b", token=auth.mint(Role.VIEWER, 120))
            assert len(await recv_frames(va.tracks[0], 2, 30)) == 2
            assert len(await recv_frames(vb.tracks[0], 2, 30)) == 2
            clip.write_bytes(b"\0not a video any more" * 64)  # the next loop's open fails
            for _ in range(300):
                if room_a.source.state is SourceState.FAILED:
                    break
                await asyncio.sleep(0.1)
            assert room_a.source.state is SourceState.FAILED, room_a.source.state
            # room b never noticed: its viewer keeps playing, its session is there
            got = await recv_frames(vb.tracks[0], 10, 30)
            assert len(got) == 10
            assert len(srv.process.rooms["b"].sessions.viewers) == 1
            async with http.get(srv.url + "/healthz") as r:
                health = await r.json()
            assert health["status"] == "degraded"
            assert health["rooms"]["b"]["status"] == "ok"
            assert health["rooms"]["a"]["status"] == "degraded"
            await va.close(http, srv.url)
            await vb.close(http, srv.url)
    finally:
        await srv.close()


async def test_rooms_come_and_go_while_others_serve_without_leaking(tmp_path):
    """Three rooms: a and b serve throughout, c is created, watched and deleted three times
    while viewers join and leave every room. After each round every session and peer is
    gone, and fds and GPU objects after the third round are no more than after the first
    (a leak grows every round; the first round pays for the lazily made, kept things)."""
    rooms = [RoomConfig(name="a", source="testsrc"), RoomConfig(name="b", source="testsrc")]
    cfg, auth = with_auth(small_config().model_copy(update={"rooms": rooms}), tmp_path)
    srv = await start_server(cfg)
    admin = bearer(auth.mint(Role.ADMIN, 600))
    figures = []
    try:
        async with aiohttp.ClientSession() as http:
            for _round in range(3):
                spec = {"name": "c", "source": "testsrc", "width": 128, "height": 72}
                async with http.post(srv.url + "/api/rooms", json=spec, headers=admin) as r:
                    assert r.status == 201, await r.text()
                viewers = []
                for name in ("a", "b", "c"):
                    tok = auth.mint(Role.PLAYER, 120, rooms=[name])
                    v = await whep(http, f"{srv.url}/rooms/{name}", token=tok)
                    viewers.append(v)
                for v in viewers:
                    assert len(await recv_frames(v.tracks[0], 2, 30)) == 2
                for v in viewers[:2]:  # a's and b's viewers leave; c's is ended by DELETE
                    await v.close(http, srv.url)
                async with http.delete(srv.url + "/api/rooms/c", headers=admin) as r:
                    assert r.status == 204
                await viewers[2].pc.close()
                for room in srv.process.rooms.values():
                    assert not room.sessions.by_id
                    assert room.sessions.open_peer_connections() == 0
                await asyncio.sleep(1.0)  # aioice's sockets close after the peer's close
                gc.collect()
                async with http.get(srv.url + "/rooms/a/api/stats", headers=admin) as r:
                    figures.append((await r.json())["process"])
            assert set(srv.process.rooms) == {"a", "b"}
    finally:
        await srv.close()
    first, last = figures[0], figures[-1]
    assert last["open_fds"] <= first["open_fds"] + 2, figures  # slack: a socket in TIME_WAIT
    if first.get("gpu_objects") is not None:
        assert last["gpu_objects"] <= first["gpu_objects"] + 2, figures
    assert last["threads"] <= first["threads"] + 1, figures

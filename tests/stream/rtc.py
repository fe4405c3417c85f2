"""Helpers for the server tests: an in-process server, aiortc WHEP viewers, WHIP publishers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import aiohttp
import av
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from stream import config as config_mod
from stream.auth import TokenAuthority
from stream.http import make_app
from stream.room import Room
from stream.service import Service

NO_STUN = RTCConfiguration(iceServers=[])


def small_config(**over) -> config_mod.Config:
    """160x90 @ 15 fps testsrc, bilinear unless a model is given; overrides as "a.b": v."""
    base = {
        "source.width": 160,
        "source.height": 90,
        "source.fps": 15.0,
        "server.port": 0,
        "model.mode": "bilinear",
        "model.compare": False,
        "encoder.bitrate": 600_000,
    }
    base.update(over)
    return config_mod.load(None, base)


def with_auth(cfg: config_mod.Config, tmp_path) -> tuple[config_mod.Config, TokenAuthority]:
    """The config with an [auth] secret in tmp_path, and an authority minting its tokens."""
    secret = tmp_path / "auth.secret"
    secret.write_text("0123456789abcdef0123456789abcdef")
    cfg = cfg.model_copy(update={"auth": config_mod.AuthConfig(secret_file=str(secret))})
    return cfg, TokenAuthority.from_file(secret)


def bearer(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def viewer_page_config() -> config_mod.Config:
    """What the browser tests serve: 320x180 @ 30 fps, output 640x360 (ANCHORS' size)."""
    return small_config(
        **{
            "source.width": 320,
            "source.height": 180,
            "source.fps": 30.0,
            "encoder.bitrate": 1_500_000,
        }
    )


@dataclass
class Server:
    service: Room  # the default room (today's routes); None on a server with [[rooms]]
    runner: web.AppRunner
    url: str
    process: Service  # every room (stream/service.py)

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_server(
    cfg: config_mod.Config,
    model=None,
    model_name: str = "",
    extra_models: dict | None = None,
) -> Server:
    service = Service(cfg, model, model_name, extra_models)
    runner = web.AppRunner(make_app(service))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    room = service.rooms.get("default")
    return Server(room, runner, f"http://127.0.0.1:{port}", service)  # type: ignore[arg-type]


@dataclass
class Viewer:
    pc: RTCPeerConnection
    location: str
    tracks: list = field(default_factory=list)
    channel: object = None
    messages: list = field(default_factory=list)
    token: str | None = None

    async def close(self, http: aiohttp.ClientSession | None = None, base: str = "") -> None:
        if http is not None:
            with contextlib.suppress(Exception):
                await http.delete(base + self.location, headers=bearer(self.token))
        await self.pc.close()


async def whep(
    http: aiohttp.ClientSession,
    base: str,
    videos: int = 1,
    codec: str | None = None,
    datachannel: bool = False,
    token: str | None = None,
) -> Viewer:
    pc = RTCPeerConnection(NO_STUN)
    tracks: list = []
    got = asyncio.Event()

    @pc.on("track")
    def _on(track) -> None:
        tracks.append(track)
        if len(tracks) == videos:
            got.set()

    for _ in range(videos):
        pc.addTransceiver("video", direction="recvonly")
    viewer = Viewer(pc, "", tracks, token=token)
    if datachannel:
        ch = pc.createDataChannel("control")
        viewer.channel = ch

        @ch.on("message")
        def _msg(m) -> None:
            viewer.messages.append(m)

    await pc.setLocalDescription(await pc.createOffer())
    url = base + "/whep" + (f"?codec={codec}" if codec else "")
    headers = {"Content-Type": "application/sdp", **bearer(token)}
    async with http.post(url, data=pc.localDescription.sdp, headers=headers) as r:
        body = await r.text()
        assert r.status == 201, (r.status, body)
        assert r.content_type == "application/sdp"
        viewer.location = r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    await asyncio.wait_for(got.wait(), 10)
    return viewer


async def whip(
    http: aiohttp.ClientSession,
    base: str,
    track: MediaStreamTrack,
    token: str | None = None,
) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(NO_STUN)
    pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", **bearer(token)}
    async with http.post(base + "/whip", data=pc.localDescription.sdp, headers=headers) as r:
        body = await r.text()
        assert r.status == 201, (r.status, body)
        location = r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return pc, location


async def recv_frames(track, n: int, timeout: float) -> list[av.VideoFrame]:
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            frames.append(await asyncio.wait_for(track.recv(), left))
        except TimeoutError:
            break
    return frames


def nearest_upscaler():
    """ESPCN-shaped (Conv-Relu-Conv-DepthToSpace) x2 with weights that make it a nearest-
    neighbour upscaler: a real model through the engine whose output keeps the marker."""
    import numpy as np

    from .clips import espcn_shaped

    w1 = np.zeros((8, 3, 3, 3), np.float32)
    for c in range(3):
        w1[c, c, 1, 1] = 1.0
    w2 = np.zeros((12, 8, 3, 3), np.float32)
    for c in range(3):
        for s in range(4):
            w2[c * 4 + s, c, 1, 1] = 1.0  # DepthToSpace CRD: channel c*4 + (dy*2 + dx)
    return espcn_shaped(w1, w2, "nearest_x2")

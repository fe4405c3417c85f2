"""The soak's WHIP publisher (for a server with `--source webrtc`): the synthetic scene."""

from __future__ import annotations

import asyncio
import contextlib
import time
from fractions import Fraction
from typing import TYPE_CHECKING

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from ...auth import Role
from ...sources import marker
from ...sources.scene import Scene, to_frame
from .viewer import NO_STUN, SDP

if TYPE_CHECKING:
    from .runner import Soak


class SceneTrack(MediaStreamTrack):
    """A publisher's camera: the synthetic scene paced at `fps`.

    With `blank_marker` its own frame number is greyed out, for a server that stamps its own
    (source.marker = true) so the numbers match the server's per-frame messages.
    """

    kind = "video"

    def __init__(
        self, width: int, height: int, fps: float, *, seed: int = 11, blank_marker: bool = False
    ) -> None:
        super().__init__()
        self.scene = Scene(width, height, seed=seed)
        self.fps = fps
        self.k = 0
        self.t0: float | None = None
        self.blank = marker.marker_box(height)[2:] if blank_marker else None

    async def recv(self) -> av.VideoFrame:
        if self.t0 is None:
            self.t0 = time.monotonic()
        delay = self.t0 + self.k / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        rgb = self.scene.rgb(self.k, self.fps)
        if self.blank is not None:
            bw, bh = self.blank
            rgb[:bh, :bw] = 128
        frame = to_frame(rgb)
        frame.pts = int(self.k * 90000 / self.fps)
        frame.time_base = Fraction(1, 90000)
        self.k += 1
        return frame


class Publisher:
    def __init__(self, run: Soak, width: int, height: int, fps: float) -> None:
        self.run = run
        self.size = (width, height, fps)
        self.pc: RTCPeerConnection | None = None
        self.location = ""
        self.token = ""

    async def connect(self) -> None:
        pc = self.pc = RTCPeerConnection(NO_STUN)
        pc.addTransceiver(SceneTrack(*self.size, blank_marker=True), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        self.token = self.token or self.run.token(Role.PUBLISHER)
        headers = self.run.headers(self.token, **{"Content-Type": SDP})
        url = self.run.base + "/whip"
        async with self.run.client.post(url, data=pc.localDescription.sdp, headers=headers) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHIP POST answered {r.status}: {body[:200]}")
            self.location = r.headers.get("Location", "")
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))

    async def close(self, delete: bool) -> None:
        if delete and self.location:
            with contextlib.suppress(Exception):  # the server may be gone already
                url, headers = self.run.absolute(self.location), self.run.headers(self.token)
                async with self.run.client.delete(url, headers=headers) as r:
                    await r.read()
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pc.close(), 5)

"""A soak viewer: an aiortc WHEP client that reads the frame marker of every frame it decodes.

Per frame it reads the frame-number marker the server drew into the pixels and looks the
number up in the data channel's per-frame messages (``{"type": "frame", "n", "t_src",
"t_sent"}``, stream/webrtc/channel.py); remote clocks are aligned by ping/pong (lowest round
trip wins). It replaces two parts of aiortc's receive path, each checked when it joins: the
video jitter buffer (jitter.py: give up on a lost packet as a browser does) and the SRTP
receive hook (the "lossy" fault drops packets there, the "bandwidth" fault caps it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ...sources import marker
from ...sources.frames import plane_rows
from ...webrtc.patches import require
from .jitter import BoundedWaitJitterBuffer
from .records import FrameRow
from .shaper import LinkShaper, shaped

if TYPE_CHECKING:
    from .runner import Soak

log = logging.getLogger("stream.soak")

NO_STUN = RTCConfiguration(iceServers=[])
SDP = "application/sdp"
# a marker read as a frame this far behind or ahead of the server's newest message is a misread
MARKER_BEHIND = 2048  # the messages a viewer keeps (68 s at 30 fps)
MARKER_AHEAD = 64  # frames whose message is still on its way
JOIN_TIMEOUT_S = 15.0  # a (re)joining viewer must decode its first frame within this
JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
# (n, t_src ms, t_sent ms) of a frame, from the server's message
FrameInfo = tuple[int, float, float]


class DecodeErrors(logging.Handler):
    """Times of aiortc's "failed to decode" warnings (from its decoder thread)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to decode" in record.getMessage():
            self.times.append(time.time())


class Viewer:
    """An aiortc WHEP viewer that reads the marker of every frame it decodes."""

    def __init__(self, run: Soak, name: str, token: str = "") -> None:
        self.run = run
        self.name = name
        self.token = token
        self.pc: RTCPeerConnection | None = None
        self.location = ""
        self.channel: Any = None
        self.meta: OrderedDict[int, FrameInfo] = OrderedDict()  # by the low 16 bits
        self.pending: dict[int, FrameRow] = {}  # rows whose frame message has not come yet
        self.offset_ms = 0.0  # server clock - local clock
        self.best_rtt_ms = float("inf")
        self.joined = 0.0  # run-relative seconds
        self.first_frame: float | None = None
        self.left: float | None = None
        self.leave_mode = ""
        self.frames = 0
        self.size: tuple[int, int] | None = None  # of the frames decoded
        self.unreadable = 0
        self.misread = 0  # markers that passed their check bits but name no recent frame
        self.last_n: int | None = None
        self.last_t: float | None = None
        self.stall_until = 0.0
        self.loss = 0.0
        self.loss_until = 0.0
        self.lost_packets = 0
        self.jitter: BoundedWaitJitterBuffer | None = None
        self.shaper = LinkShaper()
        self.error = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._rng = random.Random(hash(name) & 0xFFFF)

    # -- signalling ------------------------------------------------------------------------

    async def connect(self) -> None:
        run = self.run
        self.joined = run.now()
        pc = self.pc = RTCPeerConnection(NO_STUN)
        got: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not got.done():
                got.set_result(track)

        pc.addTransceiver("video", direction="recvonly")
        ch = self.channel = pc.createDataChannel("control")

        @ch.on("message")
        def _on_message(msg: str | bytes) -> None:
            self.on_message(msg)

        @ch.on("open")
        def _on_open() -> None:
            self._tasks.append(asyncio.ensure_future(self._pinger()))

        self._install_jitter_buffer()
        await pc.setLocalDescription(await pc.createOffer())
        url = run.base + "/whep" + (f"?codec={run.opts.codec}" if run.opts.codec else "")
        headers = run.headers(self.token, **{"Content-Type": SDP})
        async with run.client.post(url, data=pc.localDescription.sdp, headers=headers) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHEP POST answered {r.status}: {body[:200]}")
            self.location = r.headers.get("Location", "")
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        self._install_loss()
        track = await asyncio.wait_for(got, JOIN_TIMEOUT_S)
        self._tasks.append(asyncio.ensure_future(self._reader(track)))

    @property
    def session(self) -> str:
        """The server's id of this viewer's session (the last part of its WHEP location)."""
        return self.location.rsplit("/", 1)[-1]

    def _receiver(self) -> Any:
        assert self.pc is not None
        return self.pc.getTransceivers()[0].receiver

    def _install_jitter_buffer(self) -> None:
        """Give up on a lost packet after ``viewer_max_wait_s``, as a browser does (jitter.py)."""
        receiver = self._receiver()
        require(receiver, JITTER_ATTR, "the soak viewer's bounded-wait jitter buffer")
        self.jitter = BoundedWaitJitterBuffer(self.run.opts.viewer_max_wait_s)
        setattr(receiver, JITTER_ATTR, self.jitter)

    def _install_loss(self) -> None:
        """Wrap this viewer's SRTP receive path so the "lossy" fault can drop RTP packets and
        the "bandwidth" fault can cap it."""
        dtls = self._receiver().transport
        inner = require(dtls, "_handle_rtp_data", "the soak's lossy fault")

        async def lossy(data: bytes, arrival_time_ms: int) -> None:
            if self.loss_until > time.time() and self._rng.random() < self.loss:
                self.lost_packets += 1
                return
            await inner(data, arrival_time_ms)

        # the "bandwidth" fault's link in front (shaper.py)
        dtls._handle_rtp_data = shaped(lossy, self.shaper, time.monotonic)

    async def _pinger(self) -> None:
        """Clock offset to the server (needed when it runs on another machine)."""
        k = 0
        with contextlib.suppress(Exception):  # the channel closes under us when we leave
            while self.channel is not None and self.channel.readyState == "open":
                self.channel.send(json.dumps({"type": "ping", "t": time.time() * 1000}))
                k += 1
                await asyncio.sleep(1.0 if k < 5 else 10.0)

    def on_message(self, msg: str | bytes) -> None:
        if not isinstance(msg, str):
            return
        try:
            data = json.loads(msg)
        except ValueError:
            return
        kind = data.get("type")
        if kind == "frame":
            n = int(data["n"])
            n16 = n % marker.MODULO
            entry = (n, float(data["t_src"]), float(data.get("t_sent", data["t_src"])))
            self.meta[n16] = entry
            self.meta.move_to_end(n16)
            while len(self.meta) > MARKER_BEHIND:
                self.meta.popitem(last=False)
            row = self.pending.pop(n16, None)
            if row is not None and row.t_wall is not None:
                self._fill(row, entry, row.t_wall)
                row.t_wall = None
        elif kind == "pong" and data.get("t") is not None:
            now = time.time() * 1000
            rtt = now - float(data["t"])
            if rtt < self.best_rtt_ms:
                self.best_rtt_ms = rtt
                self.offset_ms = float(data["server"]) - (float(data["t"]) + rtt / 2)

    def _guess_number(self, n16: int) -> int | None:
        """The full frame counter for a marker's low 16 bits whose server message has not
        come yet, or None for a misread.

        The lap comes from the server's newest message (a viewer joining after the counter
        passed 65536 must not start on lap zero) or this viewer's previous frame. Six check
        bits still pass one corrupt marker in 64 (a viewer decoding broken references after a
        loss): a number far from what the server has just sent is such a misread, and must
        not count thousands of drops."""
        if not self.meta:
            return marker.unwrap(n16, n16 if self.last_n is None else self.last_n + 1)
        newest = next(reversed(self.meta.values()))[0]
        n = marker.unwrap(n16, newest)
        if not newest - MARKER_BEHIND <= n <= newest + MARKER_AHEAD:
            return None
        return n

    def _fill(self, row: FrameRow, entry: FrameInfo, t_wall: float) -> None:
        n, t_src, t_sent = entry
        now_ms = t_wall * 1000
        row.latency_ms = round(now_ms - (t_src - self.offset_ms), 3)
        row.send_ms = round(now_ms - (t_sent - self.offset_ms), 3)
        if row.n != n:  # the unwrap guessed another lap; trust the server's counter
            if self.last_n == row.n:
                self.last_n = n
            row.n = n

    # -- frames ----------------------------------------------------------------------------

    async def _reader(self, track: MediaStreamTrack) -> None:
        run = self.run
        try:
            while True:
                stall = self.stall_until - time.time()
                if stall > 0:
                    await asyncio.sleep(stall)
                frame = await track.recv()
                t_wall = time.time()
                assert isinstance(frame, av.VideoFrame)
                self.on_frame(frame, t_wall, run.rel(t_wall))
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
            log.exception("viewer %s: reader failed", self.name)

    def on_frame(self, frame: av.VideoFrame, t_wall: float, t: float) -> None:
        self.frames += 1
        self.size = (frame.width, frame.height)
        if self.first_frame is None:
            self.first_frame = t
        row = FrameRow(t=round(t, 4), viewer=self.name)
        if self.last_t is not None:
            row.interval_ms = round((t - self.last_t) * 1000, 3)
        self.last_t = t
        n16 = marker.read(luma_top(frame), self.run.marker_hint(frame.height))
        # the server's message for these bits names the full counter (meta keeps the last
        # 2048 frames, far less than a lap); without it yet, the number is guessed
        entry: FrameInfo | None = None
        n: int | None = None
        if n16 is not None:
            entry = self.meta.get(n16)
            n = entry[0] if entry is not None else self._guess_number(n16)
        if n16 is None:
            self.unreadable += 1
        elif n is None:
            self.misread += 1
            row.misread = True
        else:
            row.n = n
            if entry is not None:
                self._fill(row, entry, t_wall)
            else:
                row.t_wall = t_wall
                self.pending[n16] = row
                if len(self.pending) > 256:
                    self.pending.pop(next(iter(self.pending))).t_wall = None
            self._count_steps(row, n)
        self.run.frames.append(row)

    def _count_steps(self, row: FrameRow, n: int) -> None:
        """Drops and repeats from this frame's number against the previous one's."""
        if self.last_n is not None:
            d = n - self.last_n
            if abs(d) > marker.MODULO // 2:
                row.resync = True  # a lap guessed wrong before the server's message
            elif d > 1:
                row.missed = d - 1
            elif d <= 0:
                row.repeat = True
        if not row.repeat:  # a repeat or an older frame: last_n stays the newest
            self.last_n = n

    # -- leaving ---------------------------------------------------------------------------

    async def leave(self, mode: str) -> None:
        """Go without DELETE: "close" (pc.close(): DTLS close_notify) or "vanish" (the
        sockets go first, like a killed tab: the server finds out by ICE consent)."""
        self.leave_mode = mode
        self.left = self.run.now()
        if mode == "vanish" and self.pc is not None:
            with contextlib.suppress(Exception):  # best effort: the point is to vanish
                ice = self._receiver().transport.transport
                for proto in list(ice._connection._protocols):
                    proto.transport.close()
        await self._stop()

    async def close(self) -> None:
        """The polite way, at the end of the run: DELETE, then close."""
        if self.left is None:
            self.left = self.run.now()
            self.leave_mode = "delete"
            if self.location:
                with contextlib.suppress(Exception):  # the server may be gone already
                    url = self.run.absolute(self.location)
                    headers = self.run.headers(self.token)
                    async with self.run.client.delete(url, headers=headers) as r:
                        await r.read()
        await self._stop()

    async def _stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for row in self.pending.values():
            row.t_wall = None
        self.pending.clear()
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pc.close(), 5)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "session": self.session,
            "joined": round(self.joined, 3),
            "first_frame": None if self.first_frame is None else round(self.first_frame, 3),
            "left": None if self.left is None else round(self.left, 3),
            "leave_mode": self.leave_mode,
            "frames": self.frames,
            "size": self.size,
            "unreadable": self.unreadable,
            "misread": self.misread,
            "lost_packets": self.lost_packets,
            "jitter_skips": 0 if self.jitter is None else self.jitter.skips,
            "clock_offset_ms": round(self.offset_ms, 3),
            "rtt_ms": None if self.best_rtt_ms == float("inf") else round(self.best_rtt_ms, 3),
            "error": self.error,
        }


def luma_top(frame: av.VideoFrame) -> np.ndarray:
    """The top half of the Y plane (where the marker is), without copying U and V."""
    if frame.format.name not in ("yuv420p", "yuvj420p", "nv12"):
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    return plane_rows(plane)[: max(1, plane.height // 2), : plane.width]

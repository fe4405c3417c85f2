"""Opus encoded once, fanned out to every listening viewer, and held for lip sync.

aiortc's RTCRtpSender encodes an AudioFrame per peer, but only packetizes an av.Packet
(`_next_encoded_frame` -> `OpusEncoder.pack`: bytes(packet), packet.pts, packet.time_base),
as it does for the video's PacketTrack (stream/encode.py). So one SharedOpus encodes each
20 ms of the capture once and pushes the packet into every OpusTrack.

Sync. A browser plays a viewer's audio and video together by mapping each track's RTP time
to the sender's wall clock through its RTCP sender reports; aiortc's reports pair a packet's
RTP time with the moment it was *sent*, and the video is stamped when it leaves the encoder
([encoder] rtp_clock = "send"). A picture is so placed at its source time plus the video's
latency (capture, model, encoder); a sound sent as soon as it is encoded would be placed
that much earlier. Each viewer's OpusTrack therefore learns its own video's latency (it
is told of each frame the viewer's video track sends, with its source time)
and sends each packet at its capture time plus that latency.

A busy loop sends some packets late (tens to hundreds of ms on a loaded host), and the sender
report that follows pairs that packet's RTP time with its late send time: every sound until
the next report would be placed that much later. `schedule_reports` makes the audio's reports
pair each packet's RTP time with the time it was due (capture + hold) instead, which is what
the RTP time stands for; the browser's jitter buffer absorbs the late arrival. The viewer's
video gets the same: its RTP time is when a frame left the encoder, and its reports say so
(not when the frame's last packet went out), and the hold then counts the video's latency
to the encoder's output.

Queues: a viewer holds at most `maxlen` packets; a slow one loses its oldest (counted), the
encoder and the other viewers never wait.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import statistics
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..sources.base import FrameMeta
from .capture import CHANNELS, RATE

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, RATE)
FRAME_SAMPLES = RATE // 50  # 20 ms: what WebRTC's Opus is usually packetized in
GAP_S = 0.25  # a capture this much later than its samples' clock lost time (a restart)
DRIFT_GAIN = 0.002  # how fast the clock follows a capture that is a little late
MAX_HOLD_S = 0.5  # the most the audio is held for the video


class SharedOpus:
    """One libopus encoder for the capture; packets out to every subscribed OpusTrack."""

    def __init__(self, bitrate: int = 96_000) -> None:
        self.bitrate = bitrate
        self.subscribers: set[OpusTrack] = set()
        self.packets = 0
        self.bytes_out = 0
        self.reanchors = 0
        self.encode_ms: collections.deque[float] = collections.deque(maxlen=250)
        self._ctx: av.AudioCodecContext | None = None
        self._pending = np.zeros((0, CHANNELS), np.int16)
        self._pts = 0  # samples handed to the encoder
        self._anchor: tuple[int, float] | None = None  # (pts, monotonic) of the sample clock

    def subscribe(self, track: OpusTrack) -> None:
        self.subscribers.add(track)

    def unsubscribe(self, track: OpusTrack) -> None:
        self.subscribers.discard(track)

    def _open(self) -> av.AudioCodecContext:
        ctx = av.CodecContext.create("libopus", "w")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = RATE
        ctx.layout = "stereo"
        ctx.format = "s16"
        ctx.time_base = TIME_BASE
        ctx.bit_rate = self.bitrate
        # CELT only: 2.5 ms of look-ahead instead of 6.5, music and effects as well as speech
        ctx.options = {"application": "lowdelay", "frame_duration": "20"}
        ctx.open()
        log.info("audio encoder: libopus %d bit/s, 20 ms frames", self.bitrate)
        return ctx

    def time_of(self, pts: int) -> float:
        """The monotonic time the sample at `pts` was captured."""
        assert self._anchor is not None
        a_pts, a_t = self._anchor
        return a_t + (pts - a_pts) / RATE

    def submit(self, pcm: np.ndarray, t_cap: float) -> None:
        """Captured samples whose first was heard at `t_cap` (monotonic). The samples keep
        their own clock: RTP time advances by what was captured, since a pipe loses nothing
        when the loop reads it late. `t_cap` comes from when a chunk was read, so it is
        never early but often late (a busy loop): the clock moves at once to an earlier
        `t_cap`, creeps towards a later one (a sound card's rate is not the system's), and
        skips ahead only past GAP_S, where time went by that was not captured (a restart)."""
        if not self.subscribers:
            self._pending = pcm[:0]
            self._anchor = None  # nobody listens: start afresh when someone does
            return
        at = self._pts + len(self._pending)  # the pts `pcm` starts at
        if self._anchor is None:
            self._anchor = (at, t_cap)
        else:
            off = t_cap - self.time_of(at)
            if off > GAP_S:  # time went by that was not captured: the RTP clock skips it
                self.reanchors += 1
                skip = int(off * RATE) // FRAME_SAMPLES * FRAME_SAMPLES
                self._pts += skip
                at += skip
                self._anchor = (at, t_cap)
            else:
                a_pts, a_t = self._anchor
                self._anchor = (a_pts, a_t + (off if off < 0 else off * DRIFT_GAIN))
        buf = np.concatenate([self._pending, pcm]) if len(self._pending) else pcm
        n = len(buf) // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = buf[n:]
        for i in range(0, n, FRAME_SAMPLES):
            self._encode(buf[i : i + FRAME_SAMPLES])

    def _encode(self, block: np.ndarray) -> None:
        if self._ctx is None:
            self._ctx = self._open()
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(block).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += len(block)
        t0 = time.perf_counter()
        packets = self._ctx.encode(frame)
        self.encode_ms.append((time.perf_counter() - t0) * 1000)
        for p in packets:
            if p.pts is None:
                continue
            p.time_base = TIME_BASE
            # libopus's packet pts is the input's less its look-ahead: the decoded samples
            # of this packet are the input's from p.pts on, so that is their capture time
            t_cap = self.time_of(p.pts)
            self.packets += 1
            self.bytes_out += p.size
            for track in list(self.subscribers):
                track.push(p, t_cap)

    def stats(self) -> dict[str, object]:
        ms = sorted(self.encode_ms)
        return {
            "codec": "opus",
            "bitrate": self.bitrate,
            "subscribers": len(self.subscribers),
            "packets": self.packets,
            "bytes": self.bytes_out,
            "reanchors": self.reanchors,
            "encode_ms_p95": round(ms[int(0.95 * (len(ms) - 1))], 3) if ms else None,
        }


class VideoLatency:
    """Told of each frame a viewer's video track sends (its on_sent): how long the frames
    take from their source time to being sent, on one clock."""

    def __init__(
        self, source_time: Callable[[int], float], window: int = 60, track: Any = None
    ) -> None:
        self.source_time = source_time  # a frame's source pts -> its monotonic time
        self.samples: collections.deque[float] = collections.deque(maxlen=window)
        self.track = track  # the viewer's video track (its PacketTrack)
        # the video's sender reports say when each frame left the encoder (its RTP time,
        # [encoder] rtp_clock = "send"; schedule_reports): the latency then counts to there
        self.at_encoder = False
        self._due = 0.0  # when the last frame sent left the encoder (monotonic) ...
        self._count = -1  # ... the track's `sent` count then

    @property
    def due(self) -> float:
        """When the frame the track handed out last left the encoder; 0 when that frame
        came without its FrameMeta (on_sent is not told of it)."""
        if self.track is not None and getattr(self.track, "sent", self._count) != self._count:
            return 0.0
        return self._due

    def sent(self, meta: FrameMeta, packet: av.Packet) -> None:
        now = time.monotonic()
        self._count = getattr(self.track, "sent", -1)
        self._due = now - max(0.0, time.time() - meta.t_encoded) if meta.t_encoded else now
        latency = (self._due if self.at_encoder else now) - self.source_time(meta.pts)
        if 0 <= latency < 10:
            self.samples.append(latency)

    def seconds(self) -> float | None:
        """The recent frames' median latency (None before the first). A frame the busy
        encoder sends late still shows late (its RTP time is its send time): the hold
        follows the typical frame, not each one."""
        return statistics.median(self.samples) if self.samples else None


class OpusTrack(MediaStreamTrack):
    """One viewer's audio: the shared Opus packets, each sent at its capture time plus the
    viewer's video latency (see the module's "Sync")."""

    kind = "audio"

    def __init__(
        self,
        encoder: SharedOpus,
        maxlen: int = 50,
        video: VideoLatency | None = None,
        offset_s: float = 0.0,
        on_stop: Callable[[OpusTrack], None] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.maxlen = maxlen
        self.video = video
        self.offset_s = offset_s
        self.on_stop = on_stop
        self.queue: collections.deque[tuple[av.Packet, float]] = collections.deque()
        self.event = asyncio.Event()
        self.sent = 0
        self.dropped = 0  # packets lost because this viewer fell behind
        self.hold_s = 0.0  # the last hold applied (for /api/stats)
        self.due = 0.0  # when the last packet handed out was due (monotonic)
        self.late_s: collections.deque[float] = collections.deque(maxlen=250)
        encoder.subscribe(self)

    def push(self, packet: av.Packet, t_cap: float) -> None:
        while len(self.queue) >= self.maxlen:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append((packet, t_cap))
        self.event.set()

    def hold(self) -> float:
        """How long after its capture a packet is sent."""
        latency = self.video.seconds() if self.video is not None else None
        if latency is None:
            return 0.0
        return max(0.0, min(MAX_HOLD_S, latency + self.offset_s))

    async def recv(self) -> av.Packet:
        while True:
            while not self.queue:
                if self.readyState != "live":
                    raise MediaStreamError
                self.event.clear()
                await self.event.wait()
            if self.readyState != "live":
                raise MediaStreamError
            packet, t_cap = self.queue[0]
            self.hold_s = self.hold()
            wait = t_cap + self.hold_s - time.monotonic()
            if wait > 0.001:
                await asyncio.sleep(min(wait, 0.05))  # the hold may change meanwhile
                continue
            self.queue.popleft()
            self.sent += 1
            self.due = t_cap + self.hold_s
            self.late_s.append(-wait)
            return packet

    def stop(self) -> None:
        super().stop()
        self.encoder.unsubscribe(self)
        self.event.set()
        if self.on_stop is not None:
            self.on_stop(self)

    def info(self) -> dict[str, object]:
        late = sorted(self.late_s)
        return {
            "stream": "audio",
            "sent": self.sent,
            "dropped": self.dropped,
            "queued": len(self.queue),
            "hold_ms": round(self.hold_s * 1000, 1),
            "late_ms_p95": round(late[int(0.95 * (len(late) - 1))] * 1000, 1) if late else None,
        }


NTP_S = "_RTCRtpSender__ntp_timestamp"  # aiortc: the last packet's send time (NTP format) ...
RTP_TS = "_RTCRtpSender__rtp_timestamp"  # ... and RTP time, set one after the other


def schedule_reports(sender: Any, due: Callable[[], float]) -> None:
    """Make `sender`'s RTCP sender reports pair the last packet's RTP time with when it was
    due (`due()`, monotonic), not when a busy loop got to send it (see the module's "Sync").

    aiortc sets the NTP time right after sending a packet and the RTP time just after it, in
    one step, before it asks the track for the next packet; so when the RTP time is set,
    `due()` is that packet's, and its lateness is measured then."""
    from ..webrtc import patches  # (stream.webrtc's sessions import this package)

    why = "audio sender reports at the packet's due time (lip sync on a busy host)"
    for name in (NTP_S, RTP_TS):
        patches.require(sender, name, why)
    base = type(sender)
    sender.__class__ = _SCHEDULED.get(base) or _SCHEDULED.setdefault(base, _scheduled(base))
    sender._framesmith_due = due


_SCHEDULED: dict[type, type] = {}


def _scheduled(base: type) -> type:
    def get_ntp(self: Any) -> int:
        return int(self.__dict__.get("_fs_ntp_due", self.__dict__[NTP_S]))

    def set_ntp(self: Any, value: int) -> None:
        self.__dict__[NTP_S] = value

    def get_rtp(self: Any) -> int:
        return int(self.__dict__[RTP_TS])

    def set_rtp(self: Any, value: int) -> None:
        self.__dict__[RTP_TS] = value
        due = self.__dict__["_framesmith_due"]()
        if due:
            late = time.monotonic() - due
            self.__dict__["_fs_ntp_due"] = self.__dict__[NTP_S] - round(late * (1 << 32))
        else:  # not known for this packet: the send time, as aiortc has it
            self.__dict__.pop("_fs_ntp_due", None)

    return type(
        f"Scheduled{base.__name__}",
        (base,),
        {NTP_S: property(get_ntp, set_ntp), RTP_TS: property(get_rtp, set_rtp)},
    )

"""A WHIP publisher's own sound (OBS and FFmpeg send Opus with their video), passed on.

The viewers get the publisher's Opus packets as they came, never decoded nor encoded again:
each is restamped onto one continuous RTP clock (so a new publisher taking over is a step
of one packet, not a jump of its random RTP timestamps) and handed to every listening
viewer's OpusTrack, which holds it by its video's latency like a capture's packets. The
pushes need AAC: only while one is connected are the packets decoded (one decoder) and the
PCM handed to the shared AAC encode (aac.py).

What a publisher sends is bounded before anything is done with it: the receiver's packets
come from aiortc's jitter buffer through ingest.py's `relay_audio` (no queue, no decoder
thread's work); a packet over MAX_PACKET bytes, one whose timestamp steps less than Opus's
shortest frame (MIN_STEP: a repeat, a step back) or beyond the byte budget (BYTES_PER_S,
over Opus's own 510 kbit/s maximum) is dropped (counted), one stepping further than MAX_STEP
restarts the mapping: a publisher cannot make the viewers' RTP clock jump, nor have every
viewer sent more than an Opus stream's worth of its packets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from fractions import Fraction

import av
import numpy as np

from .aac import SharedAac
from .capture import RATE, Capture, CaptureState
from .opus import DRIFT_GAIN, GAP_S, SharedOpus

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, RATE)
MAX_PACKET = 1500  # bytes: an Opus packet (RFC 6716: a frame is at most 1275) in one RTP packet
MAX_STEP = 10 * RATE  # RTP ticks: further than this (10 s of DTX silence) restarts the mapping
FIRST_STEP = RATE // 50  # a new publisher's first packet: one 20 ms frame after the last one
MIN_STEP = RATE // 400  # 2.5 ms: Opus's shortest frame
BYTES_PER_S = 96_000  # the byte budget: 768 kbit/s, over Opus's 510 kbit/s maximum
BURST_BYTES = 32_000


class PublisherAudio(Capture):
    """The sound of whoever publishes over WHIP; `packet` is fed by the publisher's
    receiver (ingest.relay_audio) on the event loop."""

    kind = "publisher"
    channels = 2  # Opus decodes to stereo whatever was encoded; the answer says so

    def __init__(self, opus: SharedOpus, pushes: SharedAac) -> None:
        super().__init__(pushes.submit)
        self.opus = opus
        self.pushes = pushes
        self.publisher = ""
        self.device = "whip publisher"
        self.dropped = 0  # packets refused (too big, stepping back)
        self.restarts = 0
        self._in: int | None = None  # the publisher's RTP timestamp of the last packet
        self._out = 0  # our pts of the last packet
        self._anchor: tuple[int, float] | None = None  # (our pts, monotonic) of the clock
        self._decoder: av.AudioCodecContext | None = None
        self._budget = float(BURST_BYTES)
        self._budget_t = time.monotonic()

    async def run(self) -> None:
        await asyncio.Event().wait()  # fed by the publisher's receiver, not by a loop here

    def begin(self, publisher: str) -> None:
        """A publisher's audio starts (it may replace another's)."""
        log.info("audio: the WHIP publisher %s's sound is passed on", publisher)
        self.publisher = publisher
        self._in = None
        self.state = CaptureState.STARTING

    def end(self, publisher: str) -> None:
        if publisher == self.publisher:
            self.publisher = ""
            self._in = None
            self._decoder = None
            self.state = CaptureState.STARTING  # waiting for a publisher again

    def packet(self, publisher: str, data: bytes, timestamp: int) -> None:
        """One Opus packet of `publisher`, with its RTP timestamp."""
        if publisher != self.publisher:
            self.begin(publisher)
        if not data or len(data) > MAX_PACKET:
            self.dropped += 1
            return
        now = time.monotonic()
        self._budget = min(BURST_BYTES, self._budget + (now - self._budget_t) * BYTES_PER_S)
        self._budget_t = now
        if len(data) > self._budget:
            self.dropped += 1
            return
        if self._in is None:
            pts = self._out + FIRST_STEP
        else:
            step = (timestamp - self._in) % (1 << 32)
            if step < MIN_STEP or step > MAX_STEP:
                if step < MIN_STEP or step > (1 << 31):  # a repeat, or a step back: dropped
                    self.dropped += 1
                    return
                self.restarts += 1
                step = FIRST_STEP
                self._anchor = None
            pts = self._out + step
        self._budget -= len(data)
        self._in, self._out = timestamp, pts
        t_cap = self._clock(pts, now)
        self.chunks += 1
        self.state = CaptureState.LIVE
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = TIME_BASE
        for track in list(self.opus.subscribers):
            track.push(packet, t_cap)
        if self.pushes.wanted:
            self._to_pushes(data, pts, t_cap)

    def _clock(self, pts: int, now: float) -> float:
        """When the packet's first sample was heard: its arrival, smoothed as a capture's
        chunk times are (SharedOpus.submit): an earlier arrival moves the clock at once, a
        later one only creeps (jitter), one past GAP_S re-anchors."""
        if self._anchor is None:
            self._anchor = (pts, now)
            return now
        a_pts, a_t = self._anchor
        off = now - (a_t + (pts - a_pts) / RATE)
        if off > GAP_S:
            self._anchor = (pts, now)
            return now
        self._anchor = (a_pts, a_t + (off if off < 0 else off * DRIFT_GAIN))
        a_pts, a_t = self._anchor
        return a_t + (pts - a_pts) / RATE

    def _to_pushes(self, data: bytes, pts: int, t_cap: float) -> None:
        """Decoded once for the pushes' AAC (only while a push wants it)."""
        if self._decoder is None:
            ctx = av.CodecContext.create("libopus", "r")
            assert isinstance(ctx, av.AudioCodecContext)
            ctx.sample_rate = RATE
            ctx.layout = "stereo"
            ctx.format = "s16"
            self._decoder = ctx
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = TIME_BASE
        try:
            frames = self._decoder.decode(packet)
        except av.FFmpegError:
            self.dropped += 1
            return
        for frame in frames:
            pcm: np.ndarray = frame.to_ndarray()
            if frame.format.is_planar:
                pcm = pcm.T
            pcm = pcm.reshape(-1, len(frame.layout.channels))
            if pcm.shape[1] == 1:
                pcm = np.repeat(pcm, 2, axis=1)
            if pcm.dtype != np.int16:
                pcm = np.clip(pcm * 32768, -32768, 32767).astype(np.int16)
            self.pushes.submit(pcm[:, :2], t_cap)

    def info(self) -> dict[str, object]:
        return {"publisher": self.publisher, "dropped": self.dropped, "restarts": self.restarts}

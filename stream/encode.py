"""Encode once per codec, fan the same av.Packets out to every viewer.

aiortc's RTCRtpSender encodes separately for each peer when its track returns frames; when
a track returns av.Packets it only packetizes them (RTCRtpSender._next_encoded_frame ->
encoder.pack(packet), which reads bytes(packet), packet.pts and packet.time_base). So one
SharedEncoder per (stream, codec) encodes each processed frame once, on its own thread, and
pushes the packet into every subscribed PacketTrack.

Keyframes: a new subscriber asks for one and waits for it; a viewer's PLI/FIR reaches
RTCRtpSender._send_keyframe, which only sets a flag for frame tracks, so the session
replaces it on the sender instance with PacketTrack.request_keyframe. A keyframe costs every
viewer several frames' worth of bytes, and any viewer can send PLIs in a loop, so requests
(PLI/FIR, a lagging viewer's or push sink's resume) are honoured at most once per
`min_keyframe_interval_s` ([encoder] min_keyframe_interval_s) for the whole encoder, whoever
asks: a request inside the interval is coalesced into one keyframe at its end, never
dropped (the viewer asking may really have lost a frame). Joins (subscribe) and the
operator's mode switch are not requests of a viewer's: they bypass the interval.

Queues: each PacketTrack holds at most `maxlen` packets. A viewer whose sender falls behind
loses what is queued and resumes at the next keyframe (which it requests); the encoder and
the other viewers never wait for it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Protocol

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.codeccontext import VideoCodecContext

from .sources.base import FrameMeta
from .temporal import LAYERS, Layer, TemporalPattern, layer_targets, ts_parameters

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)
MIN_KEYFRAME_INTERVAL_S = 1.0  # [encoder] min_keyframe_interval_s


def hardware_h264_available() -> bool:
    return "h264_nvenc" in av.codecs_available


def encoder_threads(width: int, height: int) -> int:
    """Encoder threads: one below 720p, and one on a machine of two cores whatever the size
    (libvpx's threads spin: on a busy 2-core machine two threads made a 320x180 VP8 frame
    take 80 ms instead of 2, and a 1280x720 one 41 ms instead of 12); more for big frames on
    bigger machines."""
    import os

    pixels = width * height
    cpus = os.cpu_count() or 1
    if pixels < 1280 * 720 or cpus <= 2:
        return 1
    return min(cpus, 2 if pixels < 1920 * 1080 else 4)


def realtime_options(
    name: str, width: int, height: int, bitrate: int, maxrate: int
) -> dict[str, str]:
    """libvpx's or libx264's options for real time: no lookahead or B-frames (a frame's packet
    comes back from its own encode call), keyframes only on demand, rate capped at `maxrate`
    with half a second of buffer. The service's encoders and the rate-distortion bench share
    them, so the bench measures what viewers get."""
    if name == "libvpx":
        return {
            "deadline": "realtime",
            "cpu-used": vp8_speed(width, height),
            "lag-in-frames": "0",
            "static-thresh": "1",
            "undershoot-pct": "95",
            "overshoot-pct": "15",
            "bufsize": str(bitrate // 2),
            "maxrate": str(maxrate),
            "error-resilient": "1",
        }
    return {
        "preset": "veryfast",
        "tune": "zerolatency",
        "level": "31",
        "bf": "0",
        "maxrate": str(maxrate),
        "bufsize": str(maxrate // 2),
        "x264-params": "repeat-headers=1:scenecut=0",
    }


def vp8_speed(width: int, height: int) -> str:
    """libvpx's realtime cpu-used: 8 below 720p, 12 from 720p up (measured at 1280x720 on the
    2-core machine, one thread: 12.1 ms a frame at 8, 7.7 ms at 12, 7.9 at 16; what a viewer
    gets at 30 fps is bounded by the encode, and 12 keeps the bitrate's picture)."""
    return "12" if width * height >= 1280 * 720 else "8"


class LayerFilter(Protocol):
    """A viewer's link (webrtc/link.py): which temporal layers it takes, what it was sent."""

    def forward(self, layer: Layer | None) -> bool: ...

    def on_sent(self, size: int, now: float) -> None: ...


def layer_of(packet: av.Packet) -> Layer | None:
    layer = packet.opaque
    return layer if isinstance(layer, Layer) else None


class PacketSubscriber(Protocol):
    """What a SharedEncoder feeds: a viewer's PacketTrack, or a push sink (stream/sinks/).
    push() runs on the event loop and must return at once (queue or drop, never wait)."""

    def push(self, packet: av.Packet, meta: FrameMeta | None) -> None: ...


class PacketTrack(MediaStreamTrack):
    """One viewer's video track: pre-encoded packets from a SharedEncoder."""

    kind = "video"

    def __init__(
        self,
        encoder: SharedEncoder,
        maxlen: int = 4,
        on_sent: Callable[[FrameMeta, av.Packet], None] | None = None,
        link: LayerFilter | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.link = link
        self.maxlen = maxlen
        self.on_sent = on_sent
        self.queue: collections.deque = collections.deque()
        self.event = asyncio.Event()
        self.need_keyframe = True
        self.sent = 0
        self.dropped = 0  # packets lost because this viewer fell behind
        self.pli = 0
        self.overflows = 0
        self._next_ask = 0.0
        encoder.subscribe(self)

    def push(self, packet: av.Packet, meta: FrameMeta | None) -> None:
        key = packet.is_keyframe
        if len(self.queue) >= self.maxlen:
            self.dropped += len(self.queue)
            self.queue.clear()
            self.need_keyframe = True
            self.overflows += 1
        if self.need_keyframe and not key:
            self.dropped += 1
            self._ask_keyframe()
            return
        if self.link is not None and not self.link.forward(layer_of(packet)):
            return  # a temporal layer this viewer's link cannot take
        self.need_keyframe = False
        self.queue.append((packet, meta))
        self.event.set()

    def _ask_keyframe(self) -> None:
        """Ask the shared encoder for a keyframe to resume; a viewer that keeps overflowing
        asks less and less often (up to every 8 s) so it cannot flood the others with
        keyframes."""
        now = time.monotonic()
        if now >= self._next_ask:
            self.encoder.request_keyframe()
            self._next_ask = now + min(8.0, 0.5 * 2 ** max(0, self.overflows - 1))

    def request_keyframe(self) -> None:
        """Installed as the RTCRtpSender's _send_keyframe: the viewer sent PLI or FIR."""
        self.pli += 1
        self.encoder.request_keyframe()

    async def recv(self) -> av.Packet:
        while not self.queue:
            if self.readyState != "live":
                raise MediaStreamError
            self.event.clear()
            await self.event.wait()
        packet, meta = self.queue.popleft()
        self.sent += 1
        if self.link is not None:
            self.link.on_sent(packet.size, time.monotonic())
        if not self.queue:
            self.overflows = 0  # caught up
        if self.on_sent is not None and meta is not None:
            try:
                self.on_sent(meta, packet)
            except Exception:
                log.exception("on_sent callback failed")
        return packet

    def switch(self, encoder: SharedEncoder) -> None:
        """Take packets from another shared encoder from now on (a viewer's placement,
        stream/placement.py): what waits from the old one is dropped and the next packet
        sent is a keyframe of the new one, so the viewer's decoder follows a size change
        without renegotiation."""
        if encoder is self.encoder:
            return
        self.encoder.unsubscribe(self)
        self.encoder = encoder
        self.queue.clear()
        self.need_keyframe = True
        encoder.subscribe(self)  # asks it for a keyframe

    def stop(self) -> None:
        super().stop()
        self.encoder.unsubscribe(self)
        self.event.set()


class SharedEncoder:
    """One encoder for one codec and stream; frames in via submit(), packets out to
    subscribers. Encodes only while someone is subscribed."""

    def __init__(
        self,
        codec: str,
        *,
        bitrate: int = 2_500_000,
        max_fps: float = 60.0,
        keyframe_interval_s: float = 10.0,
        min_keyframe_interval_s: float = MIN_KEYFRAME_INTERVAL_S,
        hardware: str = "auto",
        gpu: bool = False,
        name: str = "main",
        rtp_clock: str = "send",
        layers: bool = False,
    ) -> None:
        if codec not in ("vp8", "h264"):
            raise ValueError(f"codec must be vp8 or h264, not {codec!r}")
        self.codec = codec
        self.name = name
        self.bitrate = bitrate
        self.max_fps = max_fps
        self.keyframe_interval_s = keyframe_interval_s
        self.min_keyframe_interval_s = min_keyframe_interval_s
        self.use_hw = codec == "h264" and hardware == "auto" and gpu and hardware_h264_available()
        self.ctx: VideoCodecContext | None = None
        self.codec_name = ""
        self.subscribers: set[PacketSubscriber] = set()  # viewers' tracks and push sinks
        self.frames_encoded = 0
        self.keyframes = 0
        self.key_requests_honoured = 0  # requests that made a keyframe at the next frame
        self.key_requests_coalesced = 0  # inside the interval: merged into the one at its end
        self.bytes_out = 0
        self.dropped = 0  # frames replaced before the encoder got to them
        self.rate_limited = 0  # frames that came inside max_fps's interval (held, not lost)
        self._held: tuple[av.VideoFrame, FrameMeta | None, float] | None = None
        self._held_timer: asyncio.TimerHandle | None = None
        self.encode_ms: collections.deque = collections.deque(maxlen=300)
        self._times: collections.deque = collections.deque(maxlen=120)
        self._force_key = True
        self._last_key = 0.0
        self._key_due: float | None = None  # a rate-limited keyframe request, due then
        self._last_accept = -1e9
        self._pending: tuple | None = None
        self._event = asyncio.Event()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"fs-enc-{name}-{codec}")
        self._task: asyncio.Task | None = None
        self.rtp_clock = rtp_clock
        self._clock0 = time.monotonic()
        self._last_stamp = -1
        # VP8 temporal layers (stream/temporal.py): libvpx only; the layer of each packet
        # goes in packet.opaque for the viewers' selectors
        self.layered = layers and codec == "vp8"
        self._pattern = TemporalPattern()
        self._layer_bytes: collections.deque[tuple[float, int, int]] = collections.deque()
        self.max_bitrate = bitrate
        self.bitrate_changes = 0
        self._bitrate_due: int | None = None  # set by the policy, applied on the encoder thread

    # -- subscribers -----------------------------------------------------------------------

    def subscribe(self, track: PacketSubscriber) -> None:
        self.subscribers.add(track)
        self.request_keyframe(urgent=True)

    def unsubscribe(self, track: PacketSubscriber) -> None:
        self.subscribers.discard(track)

    def request_keyframe(self, urgent: bool = False) -> None:
        """A PLI storm (one viewer in a loop, or every lossy viewer at once) costs one
        keyframe per min_keyframe_interval_s; a request inside the interval is deferred to
        its end, never dropped: the viewer asking may be one that lost the last keyframe,
        and would otherwise show broken frames until the periodic one. `urgent`: the
        server's own need (a join, a mode switch), not a viewer's request."""
        if urgent:
            self._force_key = True
            return
        due = self._last_key + self.min_keyframe_interval_s
        if self._key_due is not None or self._force_key or due > time.monotonic():
            self.key_requests_coalesced += 1
        else:
            self.key_requests_honoured += 1
        self._key_due = due if self._key_due is None else min(self._key_due, due)

    def set_bitrate(self, bps: int) -> None:
        """A new target (stream/bitrate.py). x264 and NVENC take it on the next frame
        (FFmpeg reconfigures them); FFmpeg's libvpx wrapper reads the bitrate only when it
        opens, so VP8 reopens at its next frame, which is then a keyframe: the policy
        changes it seldom."""
        bps = int(max(50_000, min(self.max_bitrate, bps)))
        if bps != self.bitrate:
            self._bitrate_due = bps

    def layer_bps(self, window_s: float = 3.0) -> list[float]:
        """Bits per second of the layers <= k over the last `window_s` (keyframes in TL0),
        at most libvpx's targets for them: rate control overshoots and keyframes asked by
        other viewers land in TL0, and a viewer on a link that takes the target should not
        lose a layer for either."""
        now = time.monotonic()
        while self._layer_bytes and now - self._layer_bytes[0][0] > window_s:
            self._layer_bytes.popleft()
        if not self._layer_bytes:
            return []
        span = max(1.0, now - self._layer_bytes[0][0])
        per = [0.0] * LAYERS
        for _, tid, size in self._layer_bytes:
            per[tid] += size * 8 / span
        targets = layer_targets(self.bitrate)
        return [min(sum(per[: k + 1]), targets[k]) for k in range(LAYERS)]

    # -- frames in -------------------------------------------------------------------------

    def submit(self, frame: av.VideoFrame, meta: FrameMeta | None) -> None:
        """A processed frame; dropped at once when nobody watches or max_fps is reached; a
        frame still waiting for the encoder is replaced (newest wins)."""
        if not self.subscribers:
            return
        # hold max_fps on the frames' own clock (arrival times bunch behind the GPU)
        t = (
            float(frame.pts * frame.time_base)
            if frame.pts is not None and frame.time_base
            else time.monotonic()
        )
        wait = 0.9 / self.max_fps - (t - self._last_accept)
        if 0 < wait <= 0.9 / self.max_fps:
            # Too soon: held until the interval ends (a newer frame replaces it), not dropped.
            # A grab-on-change source sends a click's frame right after the game's last one,
            # then nothing for up to 200 ms on a static screen: dropped, the click showed late.
            self.rate_limited += 1
            self._held = (frame, meta, t)
            if self._held_timer is None:
                loop = asyncio.get_running_loop()
                self._held_timer = loop.call_later(wait, self._release_held)
            return
        if self._held is not None:  # a newer frame, in time: the held one is stale
            self._held = None
            self.dropped += 1
        self._accept(frame, meta, t)

    def _release_held(self) -> None:
        self._held_timer = None
        held, self._held = self._held, None
        if held is not None and self.subscribers:
            self._accept(*held)

    def _accept(self, frame: av.VideoFrame, meta: FrameMeta | None, t: float) -> None:
        self._last_accept = t
        if self._pending is not None:
            self.dropped += 1
        self._pending = (frame, meta)
        self._event.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self._pending is None:
                self._event.clear()
                await self._event.wait()
            frame, meta = self._pending
            self._pending = None
            now = time.monotonic()
            if now - self._last_key > self.keyframe_interval_s:
                self._force_key = True
            if self._key_due is not None and now >= self._key_due:
                self._force_key = True
            force, self._force_key = self._force_key, False
            if force:
                # requests from now on wait for the gap after this keyframe
                self._key_due = None
                self._last_key = now
            t0 = time.perf_counter()
            try:
                packets = await loop.run_in_executor(self._thread, self._encode, frame, force)
            except Exception:
                log.exception("%s encoder (%s) failed; resetting", self.codec, self.codec_name)
                self.ctx = None
                self._force_key = True
                continue
            ms = (time.perf_counter() - t0) * 1000
            self.encode_ms.append(ms)
            if meta is not None:
                meta.stages[f"encode_{self.codec}"] = ms
                meta.t_encoded = time.time()
            if self.rtp_clock == "send":
                # RTP time = when the packet leaves the encoder, so the receiver's jitter
                # buffer sees only network jitter, not the GPU's and encoder's variance
                stamp = max(int((time.monotonic() - self._clock0) * 90000), self._last_stamp + 1)
                self._last_stamp = stamp
                for p in packets:
                    p.pts = stamp
            for p in packets:
                if p.is_keyframe:
                    self.keyframes += 1
                    self._last_key = time.monotonic()
                self.bytes_out += p.size
                if self.layered and (layer := layer_of(p)) is not None:
                    tid = 0 if layer.key else layer.tid
                    self._layer_bytes.append((time.monotonic(), tid, p.size))
                for track in list(self.subscribers):
                    track.push(p, meta)
            if packets:
                self.frames_encoded += 1
                self._times.append(time.monotonic())

    # -- the codec (encoder thread) ----------------------------------------------------------

    def _open(self, width: int, height: int) -> VideoCodecContext:
        if self.use_hw:
            try:
                return self._open_codec("h264_nvenc", width, height)
            except Exception as e:  # noqa: BLE001 - fall back to software
                log.warning("h264_nvenc unavailable (%s); using libx264", e)
                self.use_hw = False
        return self._open_codec("libvpx" if self.codec == "vp8" else "libx264", width, height)

    def _open_codec(self, name: str, width: int, height: int) -> VideoCodecContext:
        ctx = av.CodecContext.create(name, "w")
        assert isinstance(ctx, VideoCodecContext)
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(round(self.max_fps), 1)
        ctx.bit_rate = self.bitrate
        ctx.gop_size = 100000  # keyframes on demand and every keyframe_interval_s
        if name == "libvpx":
            ctx.qmin, ctx.qmax = 2, 56
            ctx.options = realtime_options(name, width, height, self.bitrate, self.bitrate)
            if self.layered:
                ctx.options = {**ctx.options, "ts-parameters": ts_parameters(self.bitrate)}
            ctx.thread_count = encoder_threads(width, height)
        elif name == "libx264":
            ctx.profile = "Baseline"
            ctx.options = realtime_options(name, width, height, self.bitrate, self.max_bitrate)
            ctx.thread_count = encoder_threads(width, height)
        else:  # h264_nvenc
            ctx.profile = "baseline"
            ctx.options = {
                "preset": "p1",
                "tune": "ull",
                "zerolatency": "1",
                "bf": "0",
                "rc": "cbr",
                "delay": "0",
            }
        ctx.open()
        self.codec_name = name
        log.info("%s encoder: %s %dx%d @ %d bit/s", self.name, name, width, height, self.bitrate)
        return ctx

    def _encode(self, frame: av.VideoFrame, force_key: bool) -> list[av.Packet]:
        if self._bitrate_due is not None:
            self.bitrate, self._bitrate_due = self._bitrate_due, None
            self.bitrate_changes += 1
            if self.ctx is not None and self.codec_name == "libvpx":
                self.ctx = None  # reopened below at the new rate
            elif self.ctx is not None:
                self.ctx.bit_rate = self.bitrate
        if self.ctx is None or (self.ctx.width, self.ctx.height) != (frame.width, frame.height):
            self.ctx = self._open(frame.width, frame.height)
            force_key = True
        frame.pict_type = (
            av.video.frame.PictureType.I if force_key else av.video.frame.PictureType.NONE
        )
        if frame.time_base != TIME_BASE and frame.pts is not None and frame.time_base:
            frame.pts = int(frame.pts * frame.time_base / TIME_BASE)
        frame.time_base = TIME_BASE
        tid, sync = self._pattern.next(force_key) if self.layered else (0, False)
        packets = list(self.ctx.encode(frame))
        for p in packets:
            p.time_base = TIME_BASE
            if p.pts is None:
                p.pts = frame.pts
            if self.layered:
                p.opaque = Layer(tid, sync, bool(p.is_keyframe))
        return packets

    # -- figures -----------------------------------------------------------------------------

    @property
    def key_request_pending(self) -> bool:
        """A keyframe request waits for the end of the interval (or the next frame)."""
        return self._key_due is not None or self._force_key

    @property
    def pending(self) -> bool:
        """A frame is waiting for the encoder."""
        return self._pending is not None

    @property
    def fps(self) -> float:
        now = time.monotonic()
        recent = [t for t in self._times if now - t <= 2.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(1e-6, recent[-1] - recent[0])

    def stats(self) -> dict:
        ms = sorted(self.encode_ms)
        return {
            "codec": self.codec,
            "encoder": self.codec_name,
            "stream": self.name,
            "subscribers": len(self.subscribers),
            "frames_encoded": self.frames_encoded,
            "keyframes": self.keyframes,
            "keyframe_requests": {
                "honoured": self.key_requests_honoured,
                "coalesced": self.key_requests_coalesced,
            },
            "bytes": self.bytes_out,
            "dropped": self.dropped,
            "rate_limited": self.rate_limited,
            "bitrate": self.bitrate,
            "bitrate_changes": self.bitrate_changes,
            "layers": LAYERS if self.layered else 1,
            "layer_kbps": [round(b / 1000, 1) for b in self.layer_bps()] if self.layered else None,
            "fps": round(self.fps, 2),
            "encode_ms_mean": round(sum(ms) / len(ms), 3) if ms else None,
            "encode_ms_p95": round(ms[int(0.95 * (len(ms) - 1))], 3) if ms else None,
        }

    async def close(self) -> None:
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer, self._held = None, None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._thread.shutdown(wait=True)

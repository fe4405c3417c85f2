"""rtmp://, srt:// and rtp:// pushes: the shared encoder's packets muxed by PyAV on the
sink's own thread (FLV over FFmpeg's RTMP, MPEG-TS over libsrt, RTP over FFmpeg's UDP).

No re-encode: the streams are added with `add_mux_stream` (no codec context; PyAV takes the
H.264 extradata from the first keyframe for FLV) and fed copies of the encoder's packets.
Timestamps are the frames' times on the source's clock (FrameMeta.pts), starting at 0 at the
sink's first keyframe, so the audio (the game's sound encoded to AAC once for every push,
stream/audio/aac.py, or else a file source's own, passed through) is on the same clock and
interleaves with them; the muxer's interleaving holds the audio until the processed video
has caught up.

Why a TCP probe before RTMP: PyAV opens the output with avio_open(), no options and no
interrupt callback, so FFmpeg's RTMP connect cannot be given a timeout, and a host that
drops SYNs would hold the thread for the kernel's connect timeout (~2 min). A
socket.create_connection with connect_timeout_s first fails such a host in time. A server
that accepts and then stops reading still blocks a write (FFmpeg's rw_timeout cannot be set
the same way): the sink's queue then overflows and counts drops; the pipeline and viewers
never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import socket
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import av

from . import sdp
from .base import Backoff, SinkFigures, SinkState, describe
from .queue import Chunk, ChunkQueue
from .srt import MESSAGE, SrtCaller, SrtWriter
from .targets import SinkKind, Target

if TYPE_CHECKING:
    from ..audio.aac import SharedAac
    from ..config import PushConfig
    from ..encode import SharedEncoder
    from ..sources.audio import AudioFeed
    from ..sources.base import FrameMeta

TIME_BASE = Fraction(1, 90000)
FORMATS = {SinkKind.RTMP: "flv", SinkKind.SRT: "mpegts", SinkKind.RTP: "rtp"}
RTMP_PORTS = {"rtmp": 1935, "rtmps": 443}
RTP_PACKET = 1200  # bytes: WebRTC-sized, so an SFU can relay them unchanged
JOIN_TIMEOUT_S = 5.0


class MuxSink:
    """One rtmp/srt/rtp push; `push` is the shared encoder's subscriber side (event loop)."""

    def __init__(
        self,
        target: Target,
        codec: str,
        encoder: SharedEncoder,
        settings: PushConfig,
        audio: AudioFeed | SharedAac | None = None,
    ) -> None:
        self.target = target
        self.encoder = encoder
        self.settings = settings
        self.audio = audio
        self.figures = SinkFigures(target, codec)
        self.queue = ChunkQueue(settings.queue)
        self.backoff = Backoff(settings.backoff_max_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._attached = False
        self._next_ask = 0.0
        self._last_ts: int | None = None
        self._last_pts: int | None = None
        self._out: Any = None  # the muxer of the connection now (the sink's thread)
        self.cpu_s = 0.0
        self.ssrc = secrets.randbits(32) or 1
        if target.kind is SinkKind.RTP:
            self._write_sdp()

    # -- the event loop's side -------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"fs-push-{self.target.index}-{self.target.kind}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        self._detach()
        stuck = ""
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, JOIN_TIMEOUT_S)
            if self._thread.is_alive():  # a daemon thread: it goes with the process
                stuck = f"its last write did not return in {JOIN_TIMEOUT_S:g} s"
        self.figures.set_state(SinkState.STOPPED, stuck)

    def push(self, packet: av.Packet, meta: FrameMeta | None) -> None:
        """A packet of the shared encoder (on the loop): copied, stamped, queued; never waits."""
        if self.queue.closed:
            return  # between a lost connection and its detach on the loop
        ts = self._source_time(packet, meta)
        ctx = self.encoder.ctx  # the size of the picture: FLV's header needs it
        size = (ctx.width, ctx.height) if ctx is not None else (0, 0)
        chunk = Chunk(bytes(packet), ts, bool(packet.is_keyframe), width=size[0], height=size[1])
        if not self.queue.put(chunk):
            self.figures.dropped = self.queue.dropped
            self._ask_keyframe()

    def _source_time(self, packet: av.Packet, meta: FrameMeta | None) -> int:
        """The frame's pts on the source's clock; when its meta is gone, the last one plus
        the encoder's own step."""
        if meta is not None:
            ts = meta.pts
        elif self._last_ts is not None and self._last_pts is not None and packet.pts:
            ts = self._last_ts + max(1, packet.pts - self._last_pts)
        else:
            ts = self._last_ts + 3000 if self._last_ts is not None else 0
        self._last_ts, self._last_pts = ts, packet.pts
        return ts

    def _ask_keyframe(self) -> None:
        """At most one request per 0.5 s, backing off to 8 s while the queue keeps
        overflowing (so a stuck sink cannot flood the viewers with keyframes)."""
        now = time.monotonic()
        if now >= self._next_ask:
            self.encoder.request_keyframe()
            self._next_ask = now + min(8.0, 0.5 * 2 ** max(0, self.queue.overflows - 1))

    def _audio_in(self, data: bytes, pts: int) -> None:
        self.queue.put(Chunk(data, pts, audio=True))

    def _attach(self) -> None:
        if self._attached or self._stop.is_set():
            return
        self._attached = True
        interval = self.settings.keyframe_interval_s
        self.encoder.keyframe_interval_s = min(self.encoder.keyframe_interval_s, interval)
        self.encoder.subscribe(self)  # asks for a keyframe now: the sink starts on one

    def _detach(self) -> None:
        if self._attached:
            self._attached = False
            self.encoder.unsubscribe(self)

    def _on_loop(self, fn: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(fn)

    # -- the sink's thread -----------------------------------------------------------------

    def _run(self) -> None:
        f = self.figures
        while not self._stop.is_set():
            f.set_state(SinkState.CONNECTING)
            error = "closed by the server"
            caller: SrtCaller | None = None
            try:
                caller = self._connect()
                if self.audio is not None and self.target.kind is not SinkKind.RTP:
                    self.audio.subscribe(self._audio_in)  # from now: see queue.py
                self.queue.open()
                self._on_loop(self._attach)
                self._pump(caller)
            except Exception as e:  # noqa: BLE001 - any failure of a push is retried
                error = describe(e, self.target)
            finally:
                self._on_loop(self._detach)
                if self.audio is not None:
                    self.audio.unsubscribe(self._audio_in)
                self.queue.close()
                self.queue.reset()
                if self._out is not None:
                    with contextlib.suppress(Exception):
                        self._out.close()
                    self._out = None
                if caller is not None:
                    caller.close()
            if self._stop.is_set():
                break
            delay = self.backoff.delay(f.live_for())
            f.set_state(SinkState.RETRYING, error, delay)
            self._stop.wait(delay)

    def _connect(self) -> SrtCaller | None:
        """What can fail before the first packet: an SRT connection, or RTMP's TCP probe."""
        url = self.target.resolved()
        timeout = self.settings.connect_timeout_s
        if self.target.kind is SinkKind.SRT:
            return SrtCaller(url, timeout, self.settings.send_timeout_s)
        if self.target.kind is SinkKind.RTMP:
            parts = urlsplit(url)
            port = parts.port or RTMP_PORTS[parts.scheme.lower()]
            socket.create_connection((parts.hostname, port), timeout).close()
        return None

    def _container(self, caller: SrtCaller | None, first: Chunk) -> Any:
        """The muxer, made at the first keyframe: FLV needs the picture's size in its header
        (an add_mux_stream without it fails "dimensions not set")."""
        kind = self.target.kind
        url = self.target.resolved()
        if kind is SinkKind.RTMP:
            out = av.open(url, "w", format="flv", options={"flvflags": "no_duration_filesize"})
        elif caller is not None:
            out = av.open(SrtWriter(caller), "w", format="mpegts", buffer_size=MESSAGE)
        else:
            out = av.open(
                f"{url}?pkt_size={RTP_PACKET}",
                "w",
                format="rtp",
                options={"payload_type": str(sdp.PAYLOAD_TYPE), "ssrc": str(self.ssrc)},
            )
        self._out = out
        video = out.add_mux_stream(self.figures.codec, width=first.width, height=first.height)
        video.time_base = TIME_BASE
        self._add_audio(out)
        return out

    def _add_audio(self, out: Any) -> None:
        """The source's audio as a second stream, where the container carries its codec."""
        f = self.figures
        if self.target.kind is SinkKind.RTP:
            f.audio = "none (rtp:// carries one stream; the SDP describes video only)"
            return
        if self.audio is None:
            return
        try:
            stream = self.audio.add_to(out, self.settings.connect_timeout_s)
        except ValueError:
            f.audio = f"none ({FORMATS[self.target.kind]} cannot carry {self.audio.codec})"
            return
        if stream is None:
            f.audio = ""
            return
        stream.time_base = TIME_BASE
        f.audio = self.audio.codec

    def _pump(self, caller: SrtCaller | None) -> None:
        f = self.figures
        out: Any = None
        video: Any = None
        audio: Any = None
        ts0 = 0
        last = {False: -1, True: -1}  # per stream: strictly increasing (FLV counts in ms)
        while not self._stop.is_set():
            chunk = self.queue.get(0.5)
            if chunk is None:
                continue
            if out is None:  # always a video keyframe: the queue starts on one
                out = self._container(caller, chunk)
                streams = list(out.streams)
                video, audio = streams[0], (streams[1] if len(streams) > 1 else None)
                ts0 = chunk.ts
            if chunk.audio and (audio is None or chunk.ts < ts0):
                continue
            pts = max(chunk.ts - ts0, last[chunk.audio] + 90)
            last[chunk.audio] = pts
            packet = av.Packet(chunk.data)
            packet.pts = packet.dts = pts
            packet.time_base = TIME_BASE
            packet.is_keyframe = chunk.key
            packet.stream = audio if chunk.audio else video
            out.mux(packet)
            f.sent(len(chunk.data), chunk.audio)
            self.cpu_s = time.thread_time()  # this thread's CPU: muxing and sending
            f.dropped = self.queue.dropped
            if f.state is not SinkState.LIVE and not chunk.audio:
                f.set_state(SinkState.LIVE)

    def _write_sdp(self) -> None:
        parts = urlsplit(self.target.resolved())
        text = sdp.describe(
            parts.hostname or "", parts.port or 0, self.figures.codec, ssrc=self.ssrc
        )
        folder = Path(self.settings.sdp_dir) if self.settings.sdp_dir else default_sdp_dir()
        path = sdp.write(folder, self.target.index, text)
        self.figures.detail["sdp"] = str(path)

    def stats(self) -> dict[str, Any]:
        return {**self.figures.stats(), "queued": len(self.queue), "cpu_s": round(self.cpu_s, 3)}


@functools.cache
def default_sdp_dir() -> Path:
    """A private folder (mkdtemp: a random name, mode 0700) made once per process: a name
    another local user could guess (the pid) could be made by them first, with a symlink
    in it."""
    return Path(tempfile.mkdtemp(prefix="framesmith-push-"))

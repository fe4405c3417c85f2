"""A file or URL that PyAV opens (mp4, mkv, RTSP, RTMP, SRT, ...) as a live source."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import av

from ..urls import public_netloc
from .audio import AudioFeed
from .base import Source, SourceState
from .marker import with_marker

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "tcp")


def redact(uri: str) -> str:
    """A URI without its credentials: user:password@, the query (an SRT passphrase, a
    ?token=) and an RTMP stream key (the path after the application) become ***."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = public_netloc(parts)
    path = parts.path
    if parts.scheme.lower().startswith("rtmp"):
        segments = [p for p in path.split("/") if p]
        path = "/".join(["", *segments[:1], *(["***"] if len(segments) > 1 else [])])
    return urlunsplit((parts.scheme, netloc, path, "***" if parts.query else "", ""))


class FileSource(Source):
    """A file or URL that PyAV opens, played at its own frame rate; files loop at EOF,
    streams reconnect with backoff."""

    kind = "file"

    def __init__(self, uri: str, loop: bool = True, stamp_marker: bool = False) -> None:
        super().__init__()
        self.uri = uri
        self.loop = loop
        self.stamp_marker = stamp_marker
        self.live = "://" in uri and uri.split("://", 1)[0].lower() in LIVE_SCHEMES
        if "://" not in uri and not Path(uri).exists():
            raise FileNotFoundError(f"source {uri!r}: no such file (or use testsrc / webrtc)")
        self.audio = AudioFeed()  # its compressed audio, for push sinks (stream/sinks/)

    def details(self) -> dict[str, Any]:
        return {**super().details(), "uri": redact(self.uri)}

    def _why(self, error: BaseException) -> str:
        """The error for logs and /api/stats: PyAV's name the URL (user:password@, a
        ?token= or SRT passphrase), shown redacted; control characters escaped."""
        text = str(error) or type(error).__name__
        shown = redact(self.uri)
        for form in (self.uri, repr(self.uri)[1:-1]):
            text = text.replace(form, shown)
        return text.encode("unicode_escape").decode("ascii")[:300]

    def _open(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        options = {"rtsp_transport": "tcp"} if self.uri.startswith("rtsp") else {}
        container = av.open(self.uri, options=options, timeout=10)
        if not container.streams.video:
            container.close()
            raise ValueError(f"source {redact(self.uri)!r} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or 30
        self.fps = float(rate)
        if self.audio is not None:
            with self.audio.lock:
                self.audio.set_template(next(iter(container.streams.audio), None))
        return container, stream

    def _close(self, container: av.container.InputContainer) -> None:
        if self.audio is None:
            container.close()
            return
        with self.audio.lock:  # a sink may be copying the audio's parameters right now
            self.audio.set_template(None)
            container.close()

    async def frames(self) -> AsyncIterator[av.VideoFrame]:
        backoff = 0.5
        n = 0
        while True:
            try:
                container, stream = await asyncio.to_thread(self._open)
            except Exception as e:  # noqa: BLE001 - retried (live) or raised, redacted
                why = self._why(e)
                self.fail(why)
                if not self.live:
                    # PyAV's message names the URL, credentials and all: not into a traceback
                    raise ValueError(f"source {redact(self.uri)}: {why}") from None
                log.warning("source %s: %s; retrying in %.1f s", redact(self.uri), why, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
                continue
            self.state, self.error = SourceState.LIVE, ""
            backoff = 0.5
            decoder = demux(container, stream, self.audio)
            base_wall = None
            base_t = 0.0
            last_t = None
            held: list[av.Packet] = []  # audio before the first frame sets the clock
            try:
                while True:
                    frame = await asyncio.to_thread(next, decoder, None)
                    if frame is None:
                        break
                    if isinstance(frame, av.Packet):  # audio, passed on compressed
                        held.append(frame)
                        if base_wall is not None:
                            self._pass_audio(held, base_wall - base_t)
                        continue
                    t = (
                        float(frame.time)
                        if frame.time is not None
                        else ((last_t or 0.0) + 1.0 / max(self.fps, 1))
                    )
                    if last_t is not None and t < last_t:  # timestamps went back: rebase
                        base_wall = None
                    last_t = t
                    now = time.monotonic()
                    if base_wall is None:
                        base_wall, base_t = now, t
                    delay = base_wall + (t - base_t) - now
                    self._pass_audio(held, base_wall - base_t)
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif delay < -0.5:  # behind by more than half a second: drop, resync
                        self.skipped += 1
                        base_wall, base_t = now, t
                        continue
                    if frame.format.name not in ("yuv420p", "nv12"):
                        frame = frame.reformat(format="yuv420p")
                    if self.stamp_marker:
                        frame = with_marker(frame, n)
                    yield self.stamp(frame, n)
                    n += 1
            except (av.error.FFmpegError, OSError) as e:
                why = self._why(e)
                log.warning("source %s: %s", redact(self.uri), why)
                self.fail(why)
            finally:
                self._close(container)
            if not self.live and not self.loop:
                self.state = SourceState.ENDED
                return
            if self.live:
                await asyncio.sleep(backoff)

    def _pass_audio(self, held: list[av.Packet], offset: float) -> None:
        """Held audio packets onto the frames' clock: file time + offset is the monotonic
        time the video of that instant is (or was) shown, as the pacing above decides."""
        if self.audio is not None:
            for packet in held:
                t = float((packet.pts or 0) * packet.time_base) + offset
                self.audio.publish(bytes(packet), int((t - self._t0) * 90000))
        held.clear()


def demux(
    container: av.container.InputContainer,
    video: av.video.stream.VideoStream,
    audio: AudioFeed | None,
) -> Iterator[av.VideoFrame | av.Packet]:
    """The video's decoded frames, with the audio's packets (undecoded) between them while
    a sink wants them."""
    streams: list[Any] = [video, *container.streams.audio[:1]]
    for packet in container.demux(*streams):
        if packet.stream.type == "audio":
            if audio is not None and audio.wanted and packet.pts is not None and packet.size:
                yield packet
            continue
        yield from packet.decode()

"""`webrtc`: frames a publisher sends over WHIP (the service's POST /whip hands the track over)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .base import Source, SourceState
from .marker import with_marker
from .scene import slate

log = logging.getLogger(__name__)
T = TypeVar("T")


async def _within(aw: Awaitable[T], timeout: float) -> T:
    """`asyncio.wait_for` without its Python 3.11 race (cpython gh-86296, fixed in 3.12): a
    cancellation that lands as the awaited thing finishes or times out was swallowed, so the
    service's stop() waited forever on this source's task (seen once in
    tests/stream/test_interop_ffmpeg.py: the loop idled at the slate's 0.2 s wait). Here the
    caller's cancellation always propagates; a timeout raises TimeoutError."""
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
    if not done:
        raise TimeoutError
    return task.result()


# decoded pixel formats taken: 4:2:0 at 8 bits (the pipeline uploads these planes as they are)
TAKEN_FORMATS = ("yuv420p", "yuvj420p", "nv12")


def frame_refusal(frame: av.VideoFrame, max_size: tuple[int, int]) -> str | None:
    """Why a decoded publisher frame is refused, checked before anything converts or uploads
    it (None: it is taken). The stream's headers were checked before decode already
    (stream/webrtc/ingest.py); this holds for whatever decoder made the frame."""
    if frame.width > max_size[0] or frame.height > max_size[1]:
        return (
            f"frame {frame.width}x{frame.height} is over the {max_size[0]}x{max_size[1]} "
            "limit (source.max_width/max_height)"
        )
    if frame.format.name not in TAKEN_FORMATS:
        return (
            f"frame format {frame.format.name} is not 4:2:0 at 8 bits ({', '.join(TAKEN_FORMATS)})"
        )
    return None


class RateCap:
    """A token bucket on a publisher's frame rate: one room's publisher sending far above
    the room's rate must not take the shared GPU's time from the other rooms (issue 31), and
    frames above the rate would overrun the room's per-interval budget anyway. The bucket
    holds `burst` frames so a publisher at the room's rate with network jitter loses none."""

    def __init__(self, fps: float, burst: float = 3.0) -> None:
        self.fps, self.burst = fps, burst
        self.tokens = burst
        self.last: float | None = None
        self.dropped = 0

    def admit(self, now: float) -> bool:
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.fps)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.dropped += 1
        return False


class WebRTCSource(Source):
    """Frames published over WHIP. With no publisher it shows a "NO SOURCE" slate (a few
    frames a second, so viewers see the state); a new publisher takes over."""

    kind = "webrtc"
    SLATE_FPS = 5.0
    STALL_S = 2.0

    def __init__(
        self,
        width: int = 640,
        height: int = 360,
        stamp_marker: bool = False,
        max_size: tuple[int, int] = (3840, 2160),
        max_fps: float | None = None,
    ) -> None:
        super().__init__()
        self.max_size = max_size
        # frames past this rate are dropped before the pipeline sees them (None: no cap)
        self.cap = RateCap(max_fps) if max_fps else None
        # called with (publisher, reason) when a publisher's stream is refused (the service
        # ends that session; everyone else keeps watching the slate)
        self.on_reject: Callable[[str, str], None] | None = None
        self.slate_size = (width, height)
        self.stamp_marker = stamp_marker
        self.track: MediaStreamTrack | None = None
        self.publisher: str | None = None
        self._changed = asyncio.Event()
        self.state = SourceState.NO_SOURCE

    def details(self) -> dict[str, Any]:
        out = {**super().details(), "publisher": self.publisher}
        if self.cap is not None:
            out["rate_cap_fps"], out["rate_capped"] = self.cap.fps, self.cap.dropped
        return out

    def set_track(self, track: MediaStreamTrack, publisher: str) -> None:
        log.info("webrtc source: publisher %s takes over", publisher)
        self.track, self.publisher = track, publisher
        self.state = SourceState.LIVE
        self._changed.set()

    def drop_publisher(self, publisher: str) -> None:
        if self.publisher == publisher:
            log.info("webrtc source: publisher %s left", publisher)
            self.track, self.publisher = None, None
            self.state = SourceState.NO_SOURCE
            self._changed.set()

    def _refuse(self, reason: str) -> None:
        publisher = self.publisher or ""
        self.drop_publisher(publisher)
        if self.on_reject is not None:
            self.on_reject(publisher, reason)

    async def frames(self) -> AsyncIterator[av.VideoFrame]:
        n = 0
        while True:
            track = self.track
            if track is None:
                w, h = self.slate_size
                frame = await asyncio.to_thread(slate, w, h, "NO SOURCE", n)
                yield self.stamp(frame, n)
                n += 1
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await _within(self._changed.wait(), 1.0 / self.SLATE_FPS)
                continue
            try:
                got = await _within(track.recv(), self.STALL_S)
            except TimeoutError:
                if track is self.track:
                    self.state = SourceState.STALLED
                    w, h = self.width or self.slate_size[0], self.height or self.slate_size[1]
                    yield self.stamp(await asyncio.to_thread(slate, w, h, "STALLED", n), n)
                    n += 1
                continue
            except MediaStreamError:
                if track is self.track:
                    self.drop_publisher(self.publisher or "")
                continue
            if track is not self.track or not isinstance(got, av.VideoFrame):
                continue
            reason = frame_refusal(got, self.max_size)
            if reason is not None:
                self._refuse(reason)
                continue
            self.state = SourceState.LIVE
            if self.cap is not None and not self.cap.admit(time.monotonic()):
                continue
            frame = got
            if frame.format.name == "yuvj420p":  # full range: the same planes, range scaled
                frame = frame.reformat(format="yuv420p")
            if self.stamp_marker:
                frame = with_marker(frame, n)
            yield self.stamp(frame, n)
            n += 1

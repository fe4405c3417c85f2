"""Live frame sources for `serve`: the synthetic scene, files / URLs through PyAV, and WHIP.

Every source yields yuv420p (or nv12) av.VideoFrames stamped on one clock: pts in 1/90000 s
from the source's start, and keeps a small FrameMeta per pts (frame number, wall-clock time
it was made) so that the service can tell viewers, frame by frame, when a frame was born.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from . import marker
from .frames import frame_from_planes, planes_of
from .scene import Scene, slate

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "tcp")


@dataclass
class FrameMeta:
    """What the service knows about one frame, from birth to the viewer."""

    n: int  # frame number (the marker's counter for testsrc)
    pts: int
    t_src: float  # time.time() when the source produced it
    stages: dict = field(default_factory=dict)  # ms per server stage, filled in on the way
    t_processed: float = 0.0
    t_encoded: float = 0.0


class Source:
    kind = "source"

    def __init__(self) -> None:
        self.state = "starting"
        self.width = 0
        self.height = 0
        self.fps = 0.0
        self.frames_out = 0
        self.skipped = 0  # frames the source fell behind on and did not produce
        self._meta: OrderedDict[int, FrameMeta] = OrderedDict()
        self._t0 = time.monotonic()
        self._last_pts = -1

    def frames(self) -> AsyncIterator[av.VideoFrame]:
        raise NotImplementedError

    def meta(self, pts: int | None) -> FrameMeta | None:
        return self._meta.get(pts) if pts is not None else None

    def info(self) -> dict:
        return {
            "kind": self.kind,
            "state": self.state,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frames": self.frames_out,
            "skipped": self.skipped,
        }

    def _stamp(self, frame: av.VideoFrame, n: int, pts: int | None = None) -> av.VideoFrame:
        if pts is None:
            pts = int((time.monotonic() - self._t0) * 90000)
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = TIME_BASE
        self._meta[pts] = FrameMeta(n, pts, time.time())
        while len(self._meta) > 512:
            self._meta.popitem(last=False)
        self.width, self.height = frame.width, frame.height
        self.frames_out += 1
        return frame

    def on_input(self, event: dict) -> None:
        """Client input (keys, mouse) from viewers; sources that can react override this."""

    async def close(self) -> None:
        pass


class TestSource(Source):
    """The synthetic game scene, paced by the wall clock; late frames are skipped, not
    bunched."""

    kind = "testsrc"

    def __init__(self, width: int = 640, height: int = 360, fps: float = 30.0):
        super().__init__()
        self.scene = Scene(width, height)
        self.width, self.height, self.fps = width, height, fps

    def on_input(self, event: dict) -> None:
        self.scene.on_input(event)

    async def frames(self) -> AsyncIterator[av.VideoFrame]:
        self.state = "live"
        period = 1.0 / self.fps
        t0 = time.monotonic()
        self._t0 = t0
        k = 0
        while True:
            delay = t0 + k * period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -period:  # fell behind: skip to now rather than burst
                behind = int(-delay / period)
                k += behind
                self.skipped += behind
            frame = await asyncio.to_thread(self.scene.frame, k, self.fps)
            yield self._stamp(frame, k, round(k * period * 90000))
            k += 1


class FileSource(Source):
    """A file or URL that PyAV opens, played at its own frame rate; files loop at EOF,
    streams reconnect with backoff."""

    kind = "file"

    def __init__(self, uri: str, loop: bool = True, stamp_marker: bool = False):
        super().__init__()
        self.uri = uri
        self.loop = loop
        self.stamp_marker = stamp_marker
        self.live = "://" in uri and uri.split("://", 1)[0].lower() in LIVE_SCHEMES
        if "://" not in uri and not Path(uri).exists():
            raise FileNotFoundError(f"source {uri!r}: no such file (or use testsrc / webrtc)")

    def info(self) -> dict:
        return {**super().info(), "uri": self.uri}

    def _open(self):  # noqa: ANN202
        options = {"rtsp_transport": "tcp"} if self.uri.startswith("rtsp") else {}
        container = av.open(self.uri, options=options, timeout=10)
        if not container.streams.video:
            container.close()
            raise ValueError(f"source {self.uri!r} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or 30
        self.fps = float(rate)
        return container, stream

    async def frames(self) -> AsyncIterator[av.VideoFrame]:
        backoff = 0.5
        n = 0
        while True:
            try:
                container, stream = await asyncio.to_thread(self._open)
            except Exception as e:  # noqa: BLE001 - report and retry streams
                self.state = f"error: {e}"
                if not self.live:
                    raise
                log.warning("source %s: %s; retrying in %.1f s", self.uri, e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
                continue
            self.state = "live"
            backoff = 0.5
            decoder = container.decode(stream)
            base_wall = None
            base_t = 0.0
            last_t = None
            try:
                while True:
                    frame = await asyncio.to_thread(next, decoder, None)
                    if frame is None:
                        break
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
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif delay < -0.5:  # behind by more than half a second: drop, resync
                        self.skipped += 1
                        base_wall, base_t = now, t
                        continue
                    if frame.format.name not in ("yuv420p", "nv12"):
                        frame = frame.reformat(format="yuv420p")
                    if self.stamp_marker:
                        frame = _with_marker(frame, n)
                    yield self._stamp(frame, n)
                    n += 1
            except (av.error.FFmpegError, OSError) as e:
                log.warning("source %s: %s", self.uri, e)
                self.state = f"error: {e}"
            finally:
                container.close()
            if not self.live and not self.loop:
                self.state = "ended"
                return
            if self.live:
                await asyncio.sleep(backoff)


class WebRTCSource(Source):
    """Frames published over WHIP. With no publisher it shows a "NO SOURCE" slate (a few
    frames a second, so viewers see the state); a new publisher takes over."""

    kind = "webrtc"
    SLATE_FPS = 5.0
    STALL_S = 2.0

    def __init__(self, width: int = 640, height: int = 360, stamp_marker: bool = False):
        super().__init__()
        self.slate_size = (width, height)
        self.stamp_marker = stamp_marker
        self.track = None
        self.publisher: str | None = None
        self._changed = asyncio.Event()
        self.state = "no source"

    def info(self) -> dict:
        return {**super().info(), "publisher": self.publisher}

    def set_track(self, track, publisher: str) -> None:  # noqa: ANN001 - aiortc track
        log.info("webrtc source: publisher %s takes over", publisher)
        self.track, self.publisher = track, publisher
        self.state = "live"
        self._changed.set()

    def drop_publisher(self, publisher: str) -> None:
        if self.publisher == publisher:
            log.info("webrtc source: publisher %s left", publisher)
            self.track, self.publisher = None, None
            self.state = "no source"
            self._changed.set()

    async def frames(self) -> AsyncIterator[av.VideoFrame]:
        from aiortc.mediastreams import MediaStreamError

        n = 0
        while True:
            track = self.track
            if track is None:
                w, h = self.slate_size
                frame = await asyncio.to_thread(slate, w, h, "NO SOURCE", n)
                yield self._stamp(frame, n)
                n += 1
                self._changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 1.0 / self.SLATE_FPS)
                continue
            try:
                frame = await asyncio.wait_for(track.recv(), self.STALL_S)
            except TimeoutError:
                if track is self.track:
                    self.state = "stalled"
                    w, h = self.width or self.slate_size[0], self.height or self.slate_size[1]
                    yield self._stamp(await asyncio.to_thread(slate, w, h, "STALLED", n), n)
                    n += 1
                continue
            except MediaStreamError:
                if track is self.track:
                    self.drop_publisher(self.publisher or "")
                continue
            if track is not self.track:
                continue
            self.state = "live"
            if frame.format.name not in ("yuv420p", "nv12"):
                frame = frame.reformat(format="yuv420p")
            if self.stamp_marker:
                frame = _with_marker(frame, n)
            yield self._stamp(frame, n)
            n += 1


def _with_marker(frame: av.VideoFrame, n: int) -> av.VideoFrame:
    y, u, v = planes_of(frame)
    marker.draw(y, n)
    _, _, bw, bh = marker.marker_box(y.shape[0])
    u[: (bh + 1) // 2, : (bw + 1) // 2] = 128
    v[: (bh + 1) // 2, : (bw + 1) // 2] = 128
    out = frame_from_planes(y, u, v)
    out.colorspace, out.color_range = frame.colorspace, frame.color_range
    return out


def open_source(
    uri: str, *, width: int, height: int, fps: float, loop: bool = True, marker: bool = False
) -> Source:
    if uri == "testsrc":
        return TestSource(width, height, fps)
    if uri == "webrtc":
        return WebRTCSource(width, height, stamp_marker=marker)
    return FileSource(uri, loop=loop, stamp_marker=marker)

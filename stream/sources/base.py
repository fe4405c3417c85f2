"""What every live source of `serve` is: frames stamped on one clock, with their birth times.

Every source yields yuv420p (or nv12) av.VideoFrames stamped on one clock: pts in 1/90000 s
from the source's start, and keeps a small FrameMeta per pts (frame number, wall-clock time
it was made) so that the service can tell viewers, frame by frame, when a frame was born.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any

import av

from .audio import AudioFeed

TIME_BASE = Fraction(1, 90000)


class SourceState(StrEnum):
    STARTING = "starting"
    LIVE = "live"
    NO_SOURCE = "no source"  # a WHIP source without a publisher (shows a slate)
    STALLED = "stalled"  # a publisher that stopped sending (shows a slate)
    ERROR = "error"  # a stream that failed to open or broke; retried (Source.error says why)
    ENDED = "ended"  # a file that played once (loop = false)
    FAILED = "failed"  # the source raised: no more frames

    @property
    def healthy(self) -> bool:
        """The service is doing what it should (a slate for a missing publisher counts)."""
        return self in (SourceState.LIVE, SourceState.NO_SOURCE, SourceState.STALLED)


@dataclass
class FrameMeta:
    """What the service knows about one frame, from birth to the viewer."""

    n: int  # frame number (the marker's counter for testsrc)
    pts: int
    t_src: float  # time.time() when the source produced it
    stages: dict = field(default_factory=dict)  # ms per server stage, filled in on the way
    t_processed: float = 0.0
    t_encoded: float = 0.0
    scale: float = 1.0  # the model's input scale it ran at (dynamic resolution)
    mode: str = ""  # the pipeline mode that made it (a model, or a fallback scaler)


class Source:
    kind = "source"

    def __init__(self) -> None:
        self.state = SourceState.STARTING
        self.error = ""  # what went wrong, when state is ERROR or FAILED
        self.width = 0
        self.height = 0
        self.fps = 0.0
        self.frames_out = 0
        self.skipped = 0  # frames the source fell behind on and did not produce
        self._meta: OrderedDict[int, FrameMeta] = OrderedDict()
        self._t0 = time.monotonic()
        self._last_pts = -1
        self.audio: AudioFeed | None = None  # compressed audio to pass on (file sources)

    def frames(self) -> AsyncIterator[av.VideoFrame]:
        raise NotImplementedError

    @property
    def clock_origin(self) -> float:
        """The monotonic time of pts 0: every frame's pts counts from it (the media clock
        the game audio is stamped on, stream/audio/)."""
        return self._t0

    def clock_time(self, pts: int) -> float:
        """The monotonic time a frame of this pts was made (`TIME_BASE` units)."""
        return self._t0 + pts / 90000

    def meta(self, pts: int | None) -> FrameMeta | None:
        return self._meta.get(pts) if pts is not None else None

    def info(self) -> dict[str, Any]:
        """What anyone may see (/healthz): no addresses, no error text."""
        return {
            "kind": self.kind,
            "state": str(self.state),
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frames": self.frames_out,
            "skipped": self.skipped,
        }

    async def _tick(self, t0: float, k: int, period: float) -> int:
        """Sleep until tick `k` of a clock started at `t0`; a source more than a tick behind
        skips to now (counted in `skipped`) rather than burst. Returns the tick to produce."""
        delay = t0 + k * period - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -period:
            behind = int(-delay / period)
            k += behind
            self.skipped += behind
        return k

    def stamp(self, frame: av.VideoFrame, n: int, pts: int | None = None) -> av.VideoFrame:
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

    def details(self) -> dict[str, Any]:
        """For admins (/api/stats): the error, and what the source reads (credentials cut)."""
        return {**self.info(), "error": self.error}

    def fail(self, error: str, state: SourceState = SourceState.ERROR) -> None:
        self.state, self.error = state, error

    def on_input(self, event: dict[str, Any], session: str) -> None:
        """A player's input (keys, mouse); sources that can react override this."""

    async def close(self) -> None:
        pass

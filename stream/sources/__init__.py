"""Live frame sources of `serve`: the test scene, files and URLs, and WHIP publishers."""

from __future__ import annotations

from .base import TIME_BASE, FrameMeta, Source, SourceState
from .file import FileSource
from .testsrc import TestSource
from .whip import WebRTCSource

__all__ = [
    "TIME_BASE",
    "FileSource",
    "FrameMeta",
    "Source",
    "SourceState",
    "TestSource",
    "WebRTCSource",
    "open_source",
]


def open_source(
    uri: str,
    *,
    width: int,
    height: int,
    fps: float,
    loop: bool = True,
    marker: bool = False,
    max_size: tuple[int, int] = (3840, 2160),
) -> Source:
    if uri == "testsrc":
        return TestSource(width, height, fps)
    if uri == "webrtc":
        return WebRTCSource(width, height, stamp_marker=marker, max_size=max_size)
    return FileSource(uri, loop=loop, stamp_marker=marker)

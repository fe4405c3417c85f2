"""Live frame sources of `serve`: the test scene, files and URLs, WHIP publishers and X displays."""

from __future__ import annotations

from .base import TIME_BASE, FrameMeta, Source, SourceState
from .file import FileSource
from .testsrc import TestSource
from .whip import WebRTCSource
from .x11 import X11Source, display_of

__all__ = [
    "TIME_BASE",
    "FileSource",
    "FrameMeta",
    "Source",
    "SourceState",
    "TestSource",
    "WebRTCSource",
    "X11Source",
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
    on_change: bool = True,
) -> Source:
    if uri == "testsrc":
        return TestSource(width, height, fps)
    if uri == "x11" or uri.startswith("x11:"):
        return X11Source(
            display_of(uri), width, height, fps, stamp_marker=marker, on_change=on_change
        )
    if uri == "webrtc":
        # a publisher is held to twice the room's rate (RateCap): a 60 fps game into a 30 fps
        # room keeps its frames' spacing, a flood cannot take the other rooms' GPU time
        return WebRTCSource(width, height, stamp_marker=marker, max_size=max_size, max_fps=2 * fps)
    return FileSource(uri, loop=loop, stamp_marker=marker)

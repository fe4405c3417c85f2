"""`testsrc`: the synthetic game scene (scene.py), frame-numbered, paced by the wall clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import av

from .base import Source, SourceState
from .scene import Scene


class TestSource(Source):
    """The synthetic game scene, paced by the wall clock; late frames are skipped, not
    bunched."""

    kind = "testsrc"

    def __init__(self, width: int = 640, height: int = 360, fps: float = 30.0) -> None:
        super().__init__()
        self.scene = Scene(width, height)
        self.width, self.height, self.fps = width, height, fps

    def on_input(self, event: dict[str, Any], session: str) -> None:
        self.scene.on_input(event)

    async def frames(self) -> AsyncIterator[av.VideoFrame]:
        self.state = SourceState.LIVE
        period = 1.0 / self.fps
        t0 = time.monotonic()
        self._t0 = t0
        k = 0
        while True:
            k = await self._tick(t0, k, period)
            frame = await asyncio.to_thread(self.scene.frame, k, self.fps)
            yield self.stamp(frame, k, round(k * period * 90000))
            k += 1

"""`testsrc`: the synthetic game scene (scene.py), frame-numbered, paced by the wall clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import av

from . import marker
from .base import Source, SourceState
from .scene import Scene, to_frame


class TestSource(Source):
    """The synthetic game scene, paced by the wall clock; late frames are skipped, not
    bunched."""

    kind = "testsrc"

    def __init__(self, width: int = 640, height: int = 360, fps: float = 30.0) -> None:
        super().__init__()
        self.scene = Scene(width, height)
        self.width, self.height, self.fps = width, height, fps
        # every this many frames one is drawn white (its marker kept): the flash that
        # `[audio] source = "beep"` beeps on, to measure audio-video sync (0: never)
        self.flash_every = 0

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
            frame = await asyncio.to_thread(self._frame, k)
            yield self.stamp(frame, k, round(k * period * 90000))
            k += 1

    def _frame(self, k: int) -> av.VideoFrame:
        if not (self.flash_every and k % self.flash_every == 0):
            return self.scene.frame(k, self.fps)
        img = self.scene.rgb(k, self.fps)
        _, _, w, h = marker.marker_box(img.shape[0])
        kept = img[:h, :w].copy()
        img[:] = 255
        img[:h, :w] = kept
        return to_frame(img)

"""Where frames wait for the GPU: bounded (offline, nothing dropped) or newest-wins (live).

An inbox stamps each frame with its FrameTiming as it arrives (the `timing` callback the
pipeline gives it), so waiting time counts in the frame's latency.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable

import av

from .stats import FrameTiming, PipelineStats

Item = tuple[av.VideoFrame, FrameTiming]
Timing = Callable[[av.VideoFrame], FrameTiming]


class Inbox(ABC):
    def __init__(self, timing: Timing) -> None:
        self.timing = timing

    @abstractmethod
    async def put(self, frame: av.VideoFrame | None) -> None:
        """A frame from the source; None: the source has ended."""

    @abstractmethod
    async def get(self) -> Item | None:
        """The next frame for the GPU; None once the source has ended."""


class BoundedQueue(Inbox):
    """Offline: a bounded queue, so a fast source waits for the GPU (nothing dropped)."""

    def __init__(self, timing: Timing, size: int) -> None:
        super().__init__(timing)
        self.q: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=size)

    async def put(self, frame: av.VideoFrame | None) -> None:
        await self.q.put(None if frame is None else (frame, self.timing(frame)))

    async def get(self) -> Item | None:
        return await self.q.get()


class LatestBox(Inbox):
    """Live: holds one waiting frame; a newer one replaces it and the older is counted dropped."""

    def __init__(self, timing: Timing, stats: PipelineStats) -> None:
        super().__init__(timing)
        self.stats = stats
        self.item: Item | None = None
        self.closed = False
        self.event = asyncio.Event()

    async def put(self, frame: av.VideoFrame | None) -> None:
        if frame is None:
            self.closed = True
        else:
            if self.item is not None:
                self.stats.dropped += 1
            self.item = (frame, self.timing(frame))
        self.event.set()

    async def get(self) -> Item | None:
        while self.item is None and not self.closed:
            self.event.clear()
            await self.event.wait()
        item, self.item = self.item, None
        return item

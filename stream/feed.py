"""What a pipeline reads from the source's tee: the newest frame, at most one waiting."""

from __future__ import annotations

import asyncio

import av


class Feed:
    """One consumer's view of the tee: at most one waiting frame, newest wins."""

    def __init__(self) -> None:
        self.item: av.VideoFrame | None = None
        self.event = asyncio.Event()
        self.closed = False
        self.wanted = True

    def put(self, frame: av.VideoFrame) -> None:
        if self.wanted:
            self.item = frame
            self.event.set()

    def close(self) -> None:
        self.closed = True
        self.event.set()

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> av.VideoFrame:
        while self.item is None:
            if self.closed:
                raise StopAsyncIteration
            self.event.clear()
            await self.event.wait()
        frame, self.item = self.item, None
        return frame

"""A sink's own bounded queue between the event loop (the encoder's push) and the sink's
thread (the muxer's writes).

The encoder calls push() on the event loop and must never wait: a full queue is emptied and
the sink resumes at the next keyframe (which it asks for), as a slow viewer's PacketTrack
does. Audio (a file source's, passed through) is demuxed ahead of the video by up to the file's
interleaving (about a second in an MP4 whose chunks hold a second each), and the video
reaches the sink later still, by the pipeline's latency: while the queue waits for its
first keyframe it holds the latest audio, and hands on what is not older than that keyframe,
so a sink's audio starts with its picture instead of a second later.

The packets are copied out of the shared av.Packet here (its bytes, a few kB), so the
sink's thread never touches an object aiortc is packetizing for the viewers.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """One encoded access unit on the source's clock (1/90000 s)."""

    data: bytes
    ts: int
    key: bool = False
    audio: bool = False
    width: int = 0  # of a video chunk's picture
    height: int = 0


class ChunkQueue:
    """Bounded, keyframe-aware, for one producer thread (the loop; audio may come from the
    source's thread too) and one consumer thread."""

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self.need_keyframe = True
        self.dropped = 0  # video chunks lost (overflow, or before a keyframe)
        self.overflows = 0
        self._items: collections.deque[Chunk] = collections.deque()
        self._early_audio: collections.deque[Chunk] = collections.deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self._closed = False

    def put(self, chunk: Chunk) -> bool:
        """False when the chunk was dropped; with need_keyframe set the caller asks for one."""
        with self._cond:
            if self._closed:
                return False
            if len(self._items) >= self.maxlen:
                self.dropped += sum(not c.audio for c in self._items)
                self._items.clear()
                self.need_keyframe = True
                self.overflows += 1
            if self.need_keyframe and chunk.audio:
                self._early_audio.append(chunk)  # kept for the keyframe to come
                return False
            if self.need_keyframe and not chunk.key:
                self.dropped += 1
                return False
            self._items.append(chunk)
            if self.need_keyframe:
                self.need_keyframe = False
                self._items.extend(a for a in self._early_audio if a.ts >= chunk.ts)
                self._early_audio.clear()
            self._cond.notify()
            return True

    def get(self, timeout: float) -> Chunk | None:
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def reset(self) -> None:
        """Forget what is queued (a connection was lost): the next one starts at a keyframe."""
        with self._cond:
            self._items.clear()
            self._early_audio.clear()
            self.need_keyframe = True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def open(self) -> None:
        with self._cond:
            self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

"""A WHIP publisher's frames checked before aiortc decodes them, and its queues bounded.

aiortc's RTCRtpReceiver puts every encoded frame on an unbounded `queue.Queue` that a
decoder thread drains into FFmpeg, and the thread puts every decoded frame on the remote
track's unbounded `asyncio.Queue` (aiortc.rtcrtpreceiver: decoder_worker, receive,
_handle_rtp_packet). So a publisher decides what the decoder allocates (an SPS may announce
16384x16384 at 4:4:4 and 14 bits), a decoder slower than the stream (a big frame on a busy
machine) piles encoded frames up without end, and a consumer slower than the decoder piles
decoded ones up.

`guard` replaces both queues of one receiver before it starts (patches.INGEST names the
attributes): the encoded side is a `DecodeGate` that reads each frame's headers
(bitstream.py) on the event loop, refuses the publisher on a picture over the configured
size, not 4:2:0 or not 8-bit (its frames never reach the decoder), and holds at most
`decode_queue` frames: when full, the frame is dropped and so is every frame after it up to
the next key frame (an inter frame without its reference decodes to garbage), with a PLI
asked for. The decoded side keeps the newest `frame_queue` frames. Every drop is counted.

A publisher's Opus (`relay_audio`) is never decoded here: its receiver's queue hands each
packet on at once (stream/audio/relay.py passes it to the viewers as it came).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import patches
from .bitstream import BitstreamError, Picture, announced

log = logging.getLogger(__name__)

PLI_INTERVAL_S = 0.5  # while waiting for a key frame, ask for one at most this often


@dataclass(frozen=True)
class IngestLimits:
    """What a publisher's stream may announce, and how much of it may wait."""

    max_width: int = 3840
    max_height: int = 2160
    decode_queue: int = 8  # encoded frames waiting for the decoder thread
    frame_queue: int = 4  # decoded frames waiting for the source


def picture_refusal(p: Picture, limits: IngestLimits) -> str | None:
    """Why a stream announcing this picture is refused (None: it is taken)."""
    if p.width > limits.max_width or p.height > limits.max_height:
        return (
            f"the stream announces {p.width}x{p.height}, over the {limits.max_width}x"
            f"{limits.max_height} limit (source.max_width/max_height)"
        )
    if p.chroma != "4:2:0":
        return f"the stream announces {p.chroma} chroma; only 4:2:0 is taken"
    if p.bit_depth != 8:
        return f"the stream announces {p.bit_depth}-bit samples; only 8-bit is taken"
    return None


def encoded_refusal(codec: str, data: bytes, limits: IngestLimits) -> tuple[str | None, bool]:
    """(why this encoded frame's stream is refused or None, whether it is a key frame)."""
    try:
        pictures, key = announced(codec, data)
    except BitstreamError as e:
        return f"unreadable {codec} header: {e}", False
    for p in pictures:
        reason = picture_refusal(p, limits)
        if reason is not None:
            return reason, key
    return None, key


@dataclass
class IngestCounts:
    passed: int = 0  # encoded frames handed to the decoder
    dropped_encoded: int = 0  # dropped before the decoder (queue full, or waiting for a key)
    dropped_decoded: int = 0  # decoded frames dropped for newer ones
    keyframe_requests: int = 0
    refused: str = ""  # why the stream was refused ("" while it is taken)


class DecodeGate(queue.Queue):
    """The receiver's encoded-frame queue: put() runs on the event loop (aiortc's
    _handle_rtp_packet), get() in the decoder thread."""

    def __init__(
        self,
        limits: IngestLimits,
        counts: IngestCounts,
        on_refuse: Callable[[str], None],
        want_keyframe: Callable[[], None],
    ) -> None:
        super().__init__()
        self.limits, self.counts = limits, counts
        self.on_refuse, self.want_keyframe = on_refuse, want_keyframe
        self.waiting_key = False
        self._asked = 0.0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # aiortc's stop sentinel: the thread must get it
            super().put(None)
            return
        if self.counts.refused:
            self.counts.dropped_encoded += 1
            return
        codec, frame = item
        reason, key = encoded_refusal(codec.name, bytes(frame.data), self.limits)
        if reason is not None:
            self.counts.refused = reason
            self.counts.dropped_encoded += 1
            self.on_refuse(reason)
            return
        if key and self.qsize() >= self.limits.decode_queue:
            self._drain()  # a key frame needs nothing before it: newest wins
        if key:
            self.waiting_key = False
        elif self.waiting_key or self.qsize() >= self.limits.decode_queue:
            if not self.waiting_key:
                log.info("publisher's decoder is behind: dropping frames up to a key frame")
            self.waiting_key = True
            self.counts.dropped_encoded += 1
            self._ask_keyframe()
            return
        self.counts.passed += 1
        super().put(item)

    def _drain(self) -> None:
        while True:
            try:
                item = self.get_nowait()
            except queue.Empty:
                return
            if item is None:  # never lose the stop sentinel
                super().put(None)
                return
            self.counts.dropped_encoded += 1
            self.counts.passed -= 1

    def _ask_keyframe(self) -> None:
        now = time.monotonic()
        if now - self._asked >= PLI_INTERVAL_S:
            self._asked = now
            self.counts.keyframe_requests += 1
            self.want_keyframe()


class LatestFrames(asyncio.Queue):
    """The remote track's decoded-frame queue: the newest `size` frames (the decoder thread
    puts through run_coroutine_threadsafe, so put() runs on the loop)."""

    def __init__(self, size: int, counts: IngestCounts) -> None:
        super().__init__()
        self.size, self.counts = size, counts

    def put_nowait(self, item: Any) -> None:
        while self.qsize() >= self.size:
            self.get_nowait()
            self.counts.dropped_decoded += 1
        super().put_nowait(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)


def guard(receiver: Any, limits: IngestLimits, on_refuse: Callable[[str], None]) -> IngestCounts:
    """Install the gate and the bounded frame queue on an aiortc receiver that has its
    remote track but has not started (call it right after setRemoteDescription)."""
    counts = IngestCounts()
    track = receiver.track
    if track is None or getattr(receiver, patches.RECEIVER_THREAD) is not None:
        raise RuntimeError("guard() needs a receiver with its track, before it starts")
    error: threading.Event = patches.require(
        receiver, patches.RECEIVER_DECODE_ERROR, "a PLI when frames were dropped"
    )
    patches.require(receiver, patches.RECEIVER_QUEUE, "the publisher's encoded frames")
    patches.require(track, "_queue", "the publisher's decoded frames")
    gate = DecodeGate(limits, counts, on_refuse, error.set)  # the next packet sends a PLI
    setattr(receiver, patches.RECEIVER_QUEUE, gate)
    track._queue = LatestFrames(limits.frame_queue, counts)
    return counts


class AudioRelay(queue.Queue):
    """An audio receiver's encoded-frame queue that queues nothing: each Opus packet the
    jitter buffer hands on goes to `on_packet(data, rtp_timestamp)` on the event loop and
    never reaches a decoder: the decoder thread finds the stop sentinel first and ends (the
    remote track so ends too; nobody reads it). Another codec's packets are dropped
    (counted)."""

    def __init__(self, on_packet: Callable[[bytes, int], None]) -> None:
        super().__init__()
        self.on_packet = on_packet
        self.passed = 0
        self.dropped = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # aiortc's stop sentinel: the thread must get it
            super().put(None)
            return
        codec, frame = item
        if codec.name.lower() != "opus":
            self.dropped += 1
            return
        self.passed += 1
        self.on_packet(bytes(frame.data), frame.timestamp)


def relay_audio(receiver: Any, on_packet: Callable[[bytes, int], None]) -> AudioRelay:
    """Install an AudioRelay on an aiortc audio receiver that has not started (call it
    right after setRemoteDescription)."""
    if getattr(receiver, patches.RECEIVER_THREAD) is not None:
        raise RuntimeError("relay_audio() needs a receiver before it starts")
    patches.require(receiver, patches.RECEIVER_QUEUE, "the publisher's Opus packets")
    relay = AudioRelay(on_packet)
    setattr(receiver, patches.RECEIVER_QUEUE, relay)
    relay.put(None)  # the decoder thread aiortc starts takes its stop at once: none waits
    return relay

"""A video jitter buffer that waits a bounded time for a lost packet (the soak's viewers).

aiortc's receiver keeps video in a 512-packet ``JitterBuffer`` and NACKs a lost packet once,
when the gap is first seen. When that packet and its retransmission are both lost (common at
the soak's 20% loss), the buffer hands out nothing until 512 more packets have queued behind
the hole -- 6 s of video at three packets a frame and 30 fps, 34 s at one packet and 15 fps --
and then drains the backlog one frame per arriving packet, so the viewer stays seconds behind.
A browser gives up far sooner: libwebrtc re-sends NACKs every round trip and asks for a
keyframe when a frame stays undecodable. A soak with stock aiortc viewers measured aiortc's
recovery instead of the server's; this buffer waits at most ``max_wait_s`` for a hole, then
drops what it holds and asks for a keyframe (PLI), as a browser would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

VIDEO_CAPACITY = 512  # aiortc's own video capacity (rtcrtpreceiver.py)


class BoundedWaitJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, but a hole is waited for at most ``max_wait_s``."""

    def __init__(
        self,
        max_wait_s: float = 0.5,
        capacity: int = VIDEO_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity, is_video=True)
        self.max_wait_s = max_wait_s
        self.skips = 0  # times a hole was given up on
        self._clock = clock
        self._hole_since: float | None = None
        self._await_frame_end = False  # after a skip: drop packets up to the next frame's end

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if self._await_frame_end:
            # the frame in flight lost its head with the skip: a decoder would get half a frame
            if packet.marker:
                self._await_frame_end = False
                self._origin = uint16_add(packet.sequence_number, 1)
            return False, None
        pli, frame = super().add(packet)
        if frame is not None or not self._has_hole(packet.sequence_number):
            self._hole_since = None
            return pli, frame
        now = self._clock()
        if self._hole_since is None:
            self._hole_since = now
        elif now - self._hole_since >= self.max_wait_s:
            self._skip(packet)
            return True, None
        return pli, frame

    def _has_hole(self, newest: int) -> bool:
        """A packet is missing between the oldest held and ``newest``."""
        if self._origin is None:
            return False
        span = uint16_add(newest, -self._origin)
        if span >= self.capacity:  # a late packet from before the origin: no news
            return False
        return any(
            self._packets[uint16_add(self._origin, i) % self.capacity] is None for i in range(span)
        )

    def _skip(self, packet: RtpPacket) -> None:
        """Drop everything held; resume at the first frame that starts after ``packet``."""
        self.remove(self.capacity)
        self.skips += 1
        self._hole_since = None
        if packet.marker:
            self._origin = uint16_add(packet.sequence_number, 1)
        else:
            self._await_frame_end = True

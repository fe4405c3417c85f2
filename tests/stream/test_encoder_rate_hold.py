"""Issue 30: a frame that comes inside max_fps's interval is held to the interval's end, not
dropped. A grab-on-change source sends the frame showing a click right after the game's
previous frame and, on a static screen, nothing else for up to 200 ms (its keepalive): dropped,
the click showed that much later. Counts only: which frames were encoded."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest

from stream.encode import PacketTrack, SharedEncoder
from stream.sources.scene import Scene


def _frame(k: int, t_s: float):
    f = Scene(160, 90).frame(k, 30)
    f.pts = round(t_s * 90000)
    f.time_base = Fraction(1, 90000)
    return f


@pytest.mark.timeout(60)
async def test_a_frame_inside_the_rate_limit_is_held_and_encoded_not_lost():
    enc = SharedEncoder("vp8", bitrate=300_000, max_fps=10)  # a 90 ms interval
    track = PacketTrack(enc, maxlen=100)
    try:
        enc.submit(_frame(0, 0.0), None)
        await asyncio.sleep(0.01)
        enc.submit(_frame(1, 0.01), None)  # 10 ms later: the click's frame, then silence
        for _ in range(100):
            if enc.frames_encoded >= 2:
                break
            await asyncio.sleep(0.05)
        assert enc.rate_limited == 1
        assert enc.frames_encoded == 2  # was 1: the click's frame lost
        # a newer frame in time replaces a held one (newest wins, as before)
        enc.submit(_frame(2, 1.0), None)
        await asyncio.sleep(0.01)  # the encoder takes it
        enc.submit(_frame(3, 1.01), None)  # held
        enc.submit(_frame(4, 1.2), None)  # in time: frame 3 is stale
        for _ in range(100):
            if enc.frames_encoded >= 4:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert enc.frames_encoded == 4 and enc.rate_limited == 2
    finally:
        track.stop()
        await enc.close()

"""The encoders in their lowest-latency settings (stream/encode.py): every frame in gives its
packet back from the same encode call, in order (no lookahead, no B-frames, no lag), and none
is dropped by the rate control, even at a bitrate far below what the picture needs. x264
without tune=zerolatency (lookahead, B-frames) fails here: its first packet comes 11 frames
late (checked by stripping the option)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from stream.encode import SharedEncoder

N = 24


def _frame(k: int, w: int, h: int, noise: bool) -> av.VideoFrame:
    rng = np.random.default_rng(k)
    if noise:  # the worst picture for the rate control
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:  # a moving bar: what a game mostly is, little change per frame
        img = np.full((h, w, 3), 40, np.uint8)
        img[:, (4 * k) % w : (4 * k) % w + 8] = 220
    f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
    f.pts, f.time_base = k * 3000, Fraction(1, 90000)
    return f


@pytest.mark.parametrize("codec", ["vp8", "h264"])
@pytest.mark.parametrize("noise,bitrate", [(False, 600_000), (True, 50_000)])
def test_each_frame_comes_back_from_its_own_encode_call(codec, noise, bitrate):
    enc = SharedEncoder(codec, bitrate=bitrate, max_fps=30, hardware="off")
    try:
        for k in range(N):
            packets = enc._encode(_frame(k, 160, 96, noise), force_key=k == 0)
            assert len(packets) == 1, (codec, k, len(packets))  # not held back, not dropped
            assert packets[0].pts == k * 3000  # this frame's, not an earlier one's
            assert packets[0].is_keyframe == (k == 0)
    finally:
        enc._thread.shutdown()

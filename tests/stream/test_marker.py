"""The frame-number marker: drawn, scaled, encoded, decoded, read back."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from stream.sources import marker
from stream.sources.frames import planes_of
from stream.sources.scene import Scene


@pytest.mark.parametrize("n", [0, 1, 255, 4097, 65535, 65536 + 17])
@pytest.mark.parametrize("h", [90, 180, 360, 720])
def test_round_trip_any_size_and_scale(n, h):
    y = np.full((h, h * 16 // 9), 90, np.uint8)
    marker.draw(y, n)
    assert marker.read(y) == n % 65536
    for scale in (2, 3):
        up = np.repeat(np.repeat(y, scale, 0), scale, 1)
        assert marker.read(up) == n % 65536


def test_no_marker_reads_none():
    rng = np.random.default_rng(0)
    assert marker.read(rng.integers(0, 255, (180, 320), dtype=np.uint8)) is None
    assert marker.read(np.zeros((180, 320), np.uint8)) is None


def test_a_wrong_bit_is_caught_by_the_check_bits():
    wrong = 0
    for n in range(0, 65536, 97):
        bits = marker.bits_of(n)
        for k in range(2, marker.BLOCKS):
            flipped = bits.copy()
            flipped[k] ^= 1
            data = int("".join(map(str, flipped[2:18])), 2)
            check = int("".join(map(str, flipped[18:])), 2)
            wrong += marker.check_of(data) == check
    assert wrong == 0


@pytest.mark.parametrize("codec", ["libvpx", "libx264"])
def test_marker_survives_bilinear_2x_and_a_low_bitrate_codec(codec):
    w, h = 160, 90
    scene = Scene(w, h)
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height, enc.pix_fmt = 2 * w, 2 * h, "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.bit_rate = 300_000
    if codec == "libx264":
        enc.options = {"tune": "zerolatency", "preset": "veryfast"}
    else:
        enc.options = {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "8"}
    dec = av.CodecContext.create("vp8" if codec == "libvpx" else "h264", "r")
    got = []
    for k in range(40):
        f = scene.frame(k, 30).reformat(width=2 * w, height=2 * h, interpolation="BILINEAR")
        f.pts = k
        for p in enc.encode(f):
            for out in dec.decode(p):
                got.append(marker.read(planes_of(out)[0]))
    assert len(got) >= 35
    assert got == list(range(len(got)))


def test_unwrap():
    assert marker.unwrap(5, 65530) == 65541
    assert marker.unwrap(65530, 65541) == 65530
    assert marker.unwrap(100, 100) == 100


def test_busy_pictures_do_not_read_as_markers():
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(200):
        if i % 2:
            blocks = (rng.random((18, 32)) > 0.5) * 219 + 16
            img = np.kron(blocks, np.ones((10, 10))).astype(np.uint8)
        else:
            img = rng.integers(0, 256, (180, 320), dtype=np.uint8)
        hits += marker.read(img) is not None
    assert hits == 0

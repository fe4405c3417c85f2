"""Fairness between rooms (issue 31): one room's WHIP publisher flooding frames far above the
room's rate cannot take the shared GPU's time from another room.

Real aiohttp server over real HTTP, a real aiortc publisher (the synthetic scene, VP8) and real
aiortc WHEP viewers. Every bound is a ratio of rates measured in this test or a ratio to the
room's configured rate: no wall-clock budgets.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from stream.config import RoomConfig
from stream.tools.soak.publisher import SceneTrack

from .rtc import start_server, whep, whip
from .test_rooms import rooms_config

pytestmark = pytest.mark.slow  # two phases of a few seconds each with three peers: ~30 s

A_FPS = 10.0  # room a's rate: its publisher is held to twice this (stream/sources RateCap)
FLOOD_FPS = 120.0


class Counter:
    """Counts a track's decoded frames in the background (the phase windows read it)."""

    def __init__(self, track) -> None:
        self.times: list[float] = []
        self.task = asyncio.create_task(self._run(track))

    async def _run(self, track) -> None:
        try:
            while True:
                await track.recv()
                self.times.append(time.monotonic())
        except Exception:  # noqa: BLE001 - the track ends with its peer
            return

    def rate(self, t0: float, t1: float) -> float:
        return sum(1 for t in self.times if t0 <= t < t1) / (t1 - t0)


async def window(seconds: float, *counters: Counter) -> list[float]:
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    t1 = time.monotonic()
    return [c.rate(t0, t1) for c in counters]


async def test_a_flooding_publisher_does_not_starve_another_room(tmp_path):
    a = RoomConfig(name="a", source="webrtc", width=128, height=72, fps=A_FPS)
    b = RoomConfig(name="b", source="testsrc", width=128, height=72)  # 15 fps (small_config)
    srv = await start_server(rooms_config(tmp_path, a, b, auth=False))
    pcs = []
    try:
        async with aiohttp.ClientSession() as http:
            quiet = SceneTrack(128, 72, A_FPS)
            pub, _ = await whip(http, srv.url + "/rooms/a", quiet)
            pcs.append(pub)
            va = await whep(http, srv.url + "/rooms/a")
            vb = await whep(http, srv.url + "/rooms/b")
            pcs += [va.pc, vb.pc]
            ca, cb = Counter(va.tracks[0]), Counter(vb.tracks[0])
            await window(3.0, ca, cb)  # warm-up: the publisher's first frames, the encoders
            a_quiet, b_quiet = await window(5.0, ca, cb)
            await pub.close()

            flood = SceneTrack(128, 72, FLOOD_FPS, seed=5)  # a new publisher takes over
            pub2, _ = await whip(http, srv.url + "/rooms/a", flood)
            pcs.append(pub2)
            await window(2.0, ca, cb)
            k0, t0 = flood.k, time.monotonic()
            a_flood, b_flood = await window(5.0, ca, cb)
            sent = (flood.k - k0) / (time.monotonic() - t0)
            room_a = srv.process.rooms["a"].source.details()
    finally:
        for pc in pcs:
            await pc.close()
        await srv.process.stop()
        await srv.close()
    figures = dict(
        a_quiet=a_quiet, b_quiet=b_quiet, a_flood=a_flood, b_flood=b_flood, sent=sent, a=room_a
    )
    print(figures)
    assert b_quiet > 0 and a_quiet > 0, figures
    # the flood is real: the publisher sent well above room a's cap (twice its rate)
    assert sent > 3 * A_FPS, figures
    # room a's pipeline took at most its cap (2 x its rate, +50% for the bucket's burst and
    # the window's edges), dropping the rest before the GPU...
    assert a_flood <= 1.5 * 2 * A_FPS, figures
    assert room_a["rate_capped"] > 0, figures
    # ...so room b's viewer keeps its frame rate within a generous ratio of the quiet phase
    # (a busy 2-core host moves rates by tens of percent between windows)
    assert b_flood >= 0.6 * b_quiet, figures

"""Issue 30: the frame showing a player's input is grabbed as soon as the display reports the
damage, not when the capture's rate cap next allows. At 1 fps (one interval = 1 s, so the
wait it removes is hundreds of ms, far above a loaded host's noise) a click's effect waited a
uniform 0-1 s for the next allowed grab; now it is grabbed when the app has drawn it."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from stream.input import parse_input
from stream.input.xtest import XTestInjector
from stream.sources import X11Source

from ..xhelpers import counter_of, game, needs_xvfb

pytestmark = [needs_xvfb, pytest.mark.slow]

FPS = 1.0


@pytest.mark.timeout(120)
async def test_a_click_is_grabbed_when_its_damage_comes_not_at_the_rate_cap(tmp_path):
    with game(tmp_path) as (x, app):
        src = X11Source(x.display, fps=FPS, on_change=True)
        inj = XTestInjector(x.display)
        assert await asyncio.to_thread(inj.ready)
        seen: list[tuple[float, int | None]] = []

        async def capture() -> None:
            async for f in src.frames():
                seen.append((time.monotonic(), counter_of(f)))

        task = asyncio.ensure_future(capture())
        delays = []
        try:
            while not seen:
                await asyncio.sleep(0.05)
            for k in range(1, 7):
                await asyncio.sleep(0.3 + 0.13 * k)  # a different phase of the interval each
                t = time.monotonic()
                for kind in ("mousedown", "mouseup"):
                    msg = {"kind": kind, "x": 0.8, "y": 0.2, "button": 0}
                    inj.send("player", parse_input(msg))
                while not any(c is not None and c >= k for _, c in seen):
                    await asyncio.sleep(0.005)
                delays.append(next(ts for ts, c in seen if c is not None and c >= k) - t)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await src.close()
        # the rate cap alone gives a median near half the interval (measured 0.37 s; now 2-10 ms)
        assert statistics.median(delays) < 0.15 / FPS, delays
        assert src.info()["hurried"] >= 1
        print("delays (s):", [round(d, 3) for d in delays])

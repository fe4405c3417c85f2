"""A push whose server dies and comes back is reconnected, while WHEP viewers (one on the
push's own H.264 encoder, one on VP8) keep their frame rate through the outage."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from ..rtc import small_config, start_server, whep
from .servers import Nginx, read_back_async
from .test_rtmp_srt import OUT, wait_live

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


async def count_frames(track, times: list[float]) -> None:
    while True:
        await track.recv()
        times.append(time.monotonic())


def rate(times: list[float], t0: float, t1: float) -> float:
    return sum(t0 <= t < t1 for t in times) / (t1 - t0)


@pytest.mark.timeout(150)
async def test_nginx_restarted_mid_run_is_reconnected_and_viewers_keep_their_rate(tmp_path, caplog):
    caplog.set_level("INFO", logger="stream.sinks.base")
    nginx = Nginx.create(tmp_path)
    nginx.start()
    cfg = small_config(**{"push.urls": [nginx.url("k")], "push.backoff_max_s": 1.0})
    srv = await start_server(cfg)
    svc = srv.service
    tasks: list[asyncio.Task] = []
    try:
        async with aiohttp.ClientSession() as http:
            viewers = [await whep(http, srv.url, codec=c) for c in ("h264", "vp8")]
            times: list[list[float]] = [[], []]
            tasks = [
                asyncio.ensure_future(count_frames(v.tracks[0], t))
                for v, t in zip(viewers, times, strict=True)
            ]
            await wait_live(svc, 1)
            before = await read_back_async(nginx.url("k"), 15, 30)
            assert len(before.sizes) >= 15 and set(before.sizes) == {OUT}, before.error
            t_a = time.monotonic()
            await asyncio.sleep(3)
            t_stop = time.monotonic()
            nginx.stop()
            for _ in range(50):
                if svc.push.stats()[0]["state"] == "retrying":
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(4)  # the outage: retries refused meanwhile
            t_restart = time.monotonic()
            down = svc.push.stats()[0]
            nginx.start()
            await wait_live(svc, 1)
            after = await read_back_async(nginx.url("k"), 15, 30)
            t_end = time.monotonic()
            up = svc.push.stats()[0]
            for v in viewers:
                await v.close(http, srv.url)
    finally:
        for t in tasks:
            t.cancel()
        await srv.close()
        nginx.stop()
    assert down["state"] in ("retrying", "connecting") and down["error"], down
    assert up["state"] == "live" and up["reconnects"] >= 2, up  # refused at least once
    assert len(after.sizes) >= 15 and set(after.sizes) == {OUT}, after.error
    figures = []
    for t in times:
        fps_before = rate(t, t_a, t_stop)
        fps_outage = rate(t, t_stop, t_restart)
        fps_after = rate(t, t_restart, t_end)
        assert fps_before > 10, fps_before  # 15 fps testsrc
        assert fps_outage >= 0.8 * fps_before, (fps_before, fps_outage)
        assert fps_after >= 0.8 * fps_before, (fps_before, fps_after)
        figures.append(f"{fps_before:.1f}/{fps_outage:.1f}/{fps_after:.1f}")
    print("viewer fps before/outage/after (h264, vp8):", *figures)
    lines = [r.getMessage() for r in caplog.records if r.name == "stream.sinks.base"]
    assert any("live -> retrying" in line for line in lines), lines
    assert sum(line.endswith("live (h264)") for line in lines) >= 2, lines

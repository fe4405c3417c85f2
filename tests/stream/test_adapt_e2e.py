"""The README's first command as a newcomer runs it: `python -m stream serve` with everything
at its defaults (the test scene 640x360 @ 30 through the bundled CNN to 1280x720). On lavapipe
the CNN cannot keep up even at a quarter of the input, so the adaptation must fall back and
hold the frame rate at a constant output size, and say which and why in /api/stats."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from stream.tools.soak.server import free_port

from .rtc import recv_frames, whep

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
async def test_the_default_serve_delivers_24_fps_at_a_constant_720p(tmp_path):
    port = free_port()
    load_at_start = os.getloadavg()[0]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream", "serve", "--port", str(port)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    async with http.get(url + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                await asyncio.sleep(0.5)
            viewer = await whep(http, url)
            # warm-up: compiling, the controller finding its footing
            await recv_frames(viewer.tracks[0], 10**6, 25)
            t0 = time.monotonic()
            frames = await recv_frames(viewer.tracks[0], 10**6, 15)
            fps = len(frames) / (time.monotonic() - t0)
            async with http.get(url + "/api/stats") as r:
                stats = await r.json()
            await viewer.close(http, url)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    adapt = stats["adapt"]
    print(f"ADAPT default serve: {fps:.1f} fps at {frames[-1].width}x{frames[-1].height}; {adapt}")
    assert {(f.width, f.height) for f in frames} == {(1280, 720)}
    assert adapt["enabled"] and adapt["reason"]
    assert adapt["running_mode"] in ("model", "planar", "bilinear", "bicubic")
    # the frame rate a 2-core host can hold is a property of the host's other work: judged
    # only when the host was not oversubscribed (CI runs two test workers and other jobs; at
    # load 20 this served 12.5 fps with the adaptation at its floor, as it should)
    if max(load_at_start, os.getloadavg()[0]) <= 2 * (os.cpu_count() or 1):
        assert fps >= 24, (fps, adapt, log.read_text()[-2000:])

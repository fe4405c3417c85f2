"""Process lifecycle: the CLI starts and stops cleanly on SIGTERM/SIGINT (exit 0, peers
closed); a viewer that vanishes without DELETE is cleaned up by ICE consent in seconds."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from stream.tools.soak.server import free_port

from .rtc import recv_frames, small_config, start_server, whep

pytestmark = [pytest.mark.gpu]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_cli_serves_and_shuts_down_gracefully(tmp_path, sig):
    cfg = tmp_path / "serve.toml"
    cfg.write_text(
        "[source]\nwidth = 160\nheight = 90\nfps = 15.0\n"
        '[model]\nmode = "bilinear"\ncompare = false\n'
        "[encoder]\nbitrate = 500000\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        # --width/--height override the file's source size
        [
            sys.executable,
            "-m",
            "stream",
            "serve",
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--width",
            "192",
            "--height",
            "108",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    async with http.get(base + "/healthz") as r:
                        if r.status == 200:
                            src = (await r.json())["source"]
                            break
                except aiohttp.ClientError:
                    pass
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "server did not come up"
                await asyncio.sleep(0.3)
            assert (src["width"], src["height"]) == (192, 108)
            v = await whep(http, base)
            assert len(await recv_frames(v.tracks[0], 5, 30)) == 5
            closed = asyncio.Event()

            @v.pc.on("connectionstatechange")
            def _state() -> None:
                if v.pc.connectionState in ("closed", "failed"):
                    closed.set()

            proc.send_signal(sig)
            rc = await asyncio.to_thread(proc.wait, 30)
            out = proc.stdout.read()
            assert rc == 0, out
            assert "closed (shutdown)" in out and "stopped" in out, out
            await v.pc.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(60)
async def test_cli_refuses_a_bad_config_naming_the_key(tmp_path):
    cfg = tmp_path / "serve.toml"
    cfg.write_text("[encoder]\nbitrat = 5\n")
    r = subprocess.run(
        [sys.executable, "-m", "stream", "serve", "--config", str(cfg)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert r.returncode == 2
    assert "encoder.bitrat" in r.stdout + r.stderr


@pytest.mark.timeout(60)
async def test_a_viewer_that_vanishes_without_delete_is_cleaned_up_in_seconds():
    srv = await start_server(small_config())
    svc = srv.service
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url)
            await recv_frames(v.tracks[0], 5, 30)
            enc = svc.encoders[("main", "vp8")]
            assert len(svc.sessions.viewers) == 1 and len(enc.subscribers) == 1
            # vanish: close the client's ICE sockets without a word (no DTLS close, no BYE)
            ice = v.pc.getTransceivers()[0].receiver.transport.transport
            for proto in list(ice._connection._protocols):
                proto.transport.close()
            t0 = time.monotonic()
            while svc.sessions.viewers and time.monotonic() - t0 < 20:
                await asyncio.sleep(0.2)
            gone = time.monotonic() - t0
            assert not svc.sessions.viewers, "dead viewer still there after 20 s"
            assert gone < 10, f"took {gone:.1f} s"
            assert not enc.subscribers
            print(f"dead viewer removed after {gone:.1f} s")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(v.pc.close(), 5)
    finally:
        await srv.close()


@pytest.mark.timeout(90)
async def test_viewers_that_come_and_go_leave_nothing_behind():
    import gc
    import weakref

    srv = await start_server(small_config())
    svc = srv.service
    try:
        async with aiohttp.ClientSession() as http:
            first = await whep(http, srv.url)  # warm: pipeline, encoder, codec context
            await recv_frames(first.tracks[0], 5, 30)
            await asyncio.sleep(0.5)
            tasks_before = len(asyncio.all_tasks())
            refs = []
            for _ in range(5):
                v = await whep(http, srv.url, datachannel=True)
                await recv_frames(v.tracks[0], 3, 20)
                session = svc.sessions.viewers[-1]
                refs += [weakref.ref(session.pc), weakref.ref(session.tracks[0])]
                del session
                await v.close(http, srv.url)
            await asyncio.sleep(2.0)
            gc.collect()
            alive = [r() for r in refs if r() is not None]
            assert not alive, f"{len(alive)} server-side objects of closed sessions still alive"
            assert len(svc.sessions.viewers) == 1
            assert len(svc.encoders[("main", "vp8")].subscribers) == 1
            assert len(asyncio.all_tasks()) <= tasks_before + 2
            await first.close(http, srv.url)
    finally:
        await srv.close()


def test_a_gpu_slower_than_the_source_is_reported_once(caplog):
    """After warm-up the service says when viewers will get the GPU's rate, not the source's."""
    import logging
    from types import SimpleNamespace

    from stream.pipeline.stats import FrameTiming, PipelineStats
    from stream.room import Room

    def pipe_taking(ms: float) -> SimpleNamespace:
        stats = PipelineStats()
        for i in range(6):
            stats.record(FrameTiming(i, i, upload_ms=1.0, t_submitted=10.0, t_done=10 + ms / 1000))
        return SimpleNamespace(stats=stats)

    svc = SimpleNamespace(
        _rate_checked=set(),
        source=SimpleNamespace(fps=30.0),
        config=None,
        device="llvmpipe",
    )
    out = SimpleNamespace(width=640, height=360)
    with caplog.at_level(logging.INFO, logger="stream.service"):
        Room._check_rate(svc, "main:model", pipe_taking(199.0), out)
        Room._check_rate(svc, "main:model", pipe_taking(199.0), out)  # once per mode
        Room._check_rate(svc, "main:bilinear", pipe_taking(9.0), out)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "200 ms per frame" in warnings[0], warnings
    assert "about 5.0 fps against the source's 30" in warnings[0]
    assert any("keeps up with 30 fps" in r.getMessage() for r in caplog.records)

"""A WHIP push into a second `serve --source webrtc` (another process, auth on): the first
server's processed stream is the second's source, its viewers watch it; a token without the
publisher role is refused and the push keeps retrying, saying why."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from stream.auth import Role, TokenAuthority

from ..rtc import recv_frames, small_config, start_server, whep
from .servers import free_port, stop_process

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
OUT = (320, 180)  # the first server's 160x90 testsrc, bilinear x2; the second bypasses


async def start_ingest(tmp_path: Path) -> tuple[subprocess.Popen, str, TokenAuthority]:
    secret = tmp_path / "ingest.secret"
    secret.write_text("0123456789abcdef0123456789abcdef")
    port = free_port()
    cfg = tmp_path / "ingest.toml"
    cfg.write_text(
        f'[server]\nport = {port}\n[auth]\nsecret_file = "{secret}"\n'
        '[source]\nuri = "webrtc"\nwidth = 160\nheight = 90\n'
        '[model]\nmode = "bypass"\ncompare = false\n[encoder]\nbitrate = 600000\n'
    )
    log = (tmp_path / "ingest.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "serve", "--config", str(cfg)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 60
        while True:
            try:
                async with http.get(base + "/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            assert proc.poll() is None, (tmp_path / "ingest.log").read_text()
            assert time.monotonic() < deadline, "the ingest server did not come up"
            await asyncio.sleep(0.3)
    return proc, base, TokenAuthority.from_file(secret)


def pusher_config(tmp_path: Path, base: str, token: str):
    token_file = tmp_path / "push.token"
    token_file.write_text(token + "\n")
    return small_config(
        **{
            "push.urls": [f"whip+{base}/whip"],
            "push.whip_token_file": str(token_file),
            "push.connect_timeout_s": 10.0,
        }
    )


@pytest.mark.timeout(150)
async def test_whip_push_into_a_second_serve_with_a_publisher_token(tmp_path, caplog):
    proc, base, authority = await start_ingest(tmp_path)
    try:
        # a viewer's token may not publish: 403, retried with backoff, the reason in the stats
        viewer_token = authority.mint(Role.VIEWER, 600)
        srv = await start_server(pusher_config(tmp_path, base, viewer_token))
        try:
            for _ in range(50):
                stats = srv.service.push.stats()[0]
                if stats["state"] == "retrying":
                    break
                await asyncio.sleep(0.2)
            assert stats["state"] == "retrying" and "403" in stats["error"], stats
        finally:
            await srv.close()
        assert viewer_token not in caplog.text

        token = authority.mint(Role.PUBLISHER, 600)
        srv = await start_server(pusher_config(tmp_path, base, token))
        try:
            async with aiohttp.ClientSession() as http:
                v = await whep(http, base, token=authority.mint(Role.VIEWER, 600))
                frames = []
                for _ in range(40):  # the slate first, then the pushed stream
                    frames += await recv_frames(v.tracks[0], 5, 10)
                    if sum((f.width, f.height) == OUT for f in frames) >= 20:
                        break
                assert sum((f.width, f.height) == OUT for f in frames) >= 20, (
                    {(f.width, f.height) for f in frames},
                    srv.service.push.stats(),
                )
                push = srv.service.push.stats()[0]
                encoders = [e.stats() for e in srv.service.encoders.values()]
                await v.close(http, base)
        finally:
            await srv.close()
        assert push["state"] == "live" and push["kind"] == "whip" and push["packets"] > 20
        assert [(e["stream"], e["codec"]) for e in encoders] == [("main", "h264")]
        assert push["packets"] <= encoders[0]["frames_encoded"]
        assert token not in caplog.text and token not in str(push)
    finally:
        stop_process(proc)
    log = (tmp_path / "ingest.log").read_text()
    assert "403" in log or "publisher" in log, log[-2000:]

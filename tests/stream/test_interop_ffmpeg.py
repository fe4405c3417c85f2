"""FFmpeg's own WHIP muxer (the FFmpeg 8.1 in PyAV's wheel, GnuTLS DTLS) publishing H.264
into `serve --source webrtc`, watched by an aiortc WHEP viewer.

Before issue 15 no FFmpeg publisher got in: DTLS failed in both roles (FFmpeg's secp224r1
key, stream/webrtc/dtls.py), High profile offers were refused (h264.py), and once in, the
publisher was dropped ~4 s later because FFmpeg answers no consent checks (consent.py). The
long test runs past that window; the publisher draws the marker, so latency is measured from
the frame handed to FFmpeg's encoder to the frame decoded by the viewer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from .interop import figures, read_times, receive, report
from .rtc import small_config, start_server, whep

pytestmark = [pytest.mark.gpu, pytest.mark.interop]

CLIENT = Path(__file__).with_name("clients") / "ffmpeg_whip.py"
ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = (160, 90)
OUT = (320, 180)  # bilinear x2
SLATE = (192, 108)  # the "NO SOURCE" slate is 384x216 out: never mistaken for the stream


def _config():
    return small_config(
        **{"source.uri": "webrtc", "source.width": SLATE[0], "source.height": SLATE[1]}
    )


async def _publish(url: str, seconds: float, profile: str, times: Path, *extra: str):
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        url + "/whip",
        "--seconds",
        str(seconds),
        "--profile",
        profile,
        "--size",
        f"{PUBLISHED[0]}x{PUBLISHED[1]}",
        "--fps",
        "15",
        "--times",
        str(times),
        *extra,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _summary(proc, timeout: float) -> dict:
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    lines = out.decode().strip().splitlines()
    assert lines, f"the publisher printed nothing; stderr: {err.decode()[-2000:]}"
    summary = json.loads(lines[-1])
    assert not summary["error"], (summary, err.decode()[-2000:])
    return summary


async def _run(tmp_path: Path, artifacts: Path, profile: str, seconds: float, *extra: str) -> tuple:
    srv = await start_server(_config())
    times = tmp_path / "times.txt"
    try:
        async with aiohttp.ClientSession() as http:
            viewer = await whep(http, srv.url)
            proc = await _publish(srv.url, seconds, profile, times, *extra)
            watch = asyncio.ensure_future(_publisher_states(srv.service.sessions, seconds - 1))
            got = await receive(viewer.tracks[0], seconds + 3)
            summary = await _summary(proc, 30)
            states = await watch
            left = len(srv.service.sessions.publishers)  # FFmpeg DELETEs when it closes
            await viewer.close(http, srv.url)
    finally:
        await srv.close()
    role = "dtls_active" if "--dtls-active" in extra else "default (setup:passive)"
    fig = figures(
        "FFmpeg 8.1 whip muxer (PyAV 18)",
        "WHIP in",
        f"H.264 {profile} (SPS profile_idc {summary['profile_idc']})",
        got,
        OUT,
        read_times(times),
        note=f"{seconds:.0f} s, DTLS {role}",
    )
    report(fig, artifacts)
    assert left == 0, "the publisher's DELETE did not end its session"
    return fig, summary, states


async def _publisher_states(sessions, seconds: float) -> list[str]:
    """The publisher session's state every 0.5 s, from its first appearance to `seconds`
    after the start ("gone" when there is none)."""
    states: list[str] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        pubs = sessions.publishers
        if pubs or states:
            states.append(pubs[0].pc.connectionState if pubs else "gone")
        await asyncio.sleep(0.5)
    return states


def _stayed_connected(states: list[str]) -> bool:
    """Connected from the first "connected" to the end, with nothing else after it."""
    if "connected" not in states:
        return False
    return set(states[states.index("connected") :]) == {"connected"}


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_ffmpeg_baseline_publisher_stays_past_the_consent_window(tmp_path, artifacts):
    # the service's consent is 1 s x 3 (serve config): a publisher that answers no STUN was
    # dropped after ~4 s; 65 s also passes aioice's default 5 s x 6 window (~30 s)
    fig, summary, states = await _run(tmp_path, artifacts, "baseline", 65)
    assert summary["profile_idc"] == 66  # Constrained Baseline in the SPS
    assert summary["frames"] >= 0.95 * 65 * 15
    assert _stayed_connected(states), f"the publisher's session did not last: {states}"
    assert fig.frames >= 0.8 * 62 * 15, fig
    assert fig.seconds >= 60, fig
    assert fig.max_gap_s < 2.0, fig  # never stalled (a consent drop shows as a stall)
    assert fig.markers_read >= 0.9 * fig.frames, fig
    assert fig.latency_median_ms is not None and fig.latency_median_ms < 1000, fig


@pytest.mark.timeout(90)
@pytest.mark.parametrize("role", ["passive", "active"])
async def test_ffmpeg_high_profile_publisher_in_both_dtls_roles(role, tmp_path, artifacts):
    extra = ("--dtls-active",) if role == "active" else ()
    fig, summary, states = await _run(tmp_path, artifacts, "high", 12, *extra)
    assert summary["profile_idc"] == 100  # a real High-profile stream, not a label
    assert _stayed_connected(states), states
    assert fig.frames >= 0.7 * 10 * 15, fig
    assert fig.markers_read >= 0.9 * fig.frames, fig
    assert fig.latency_median_ms is not None and fig.latency_median_ms < 1000, fig


@pytest.mark.timeout(90)
async def test_a_killed_ffmpeg_publisher_is_dropped_by_consent(tmp_path):
    # media no longer arrives and STUN is unanswered: consent expires as for any peer
    srv = await start_server(_config())
    try:
        proc = await _publish(srv.url, 60, "baseline", tmp_path / "t.txt")
        sessions = srv.service.sessions
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and srv.service.source.state != "live":
            await asyncio.sleep(0.2)
        assert srv.service.source.state == "live", "the publisher never got in"
        await asyncio.sleep(2)
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        await proc.wait()
        while sessions.publishers and time.monotonic() - killed < 20:
            await asyncio.sleep(0.1)
        gone_after = time.monotonic() - killed
        assert not sessions.publishers, "a dead publisher kept its session"
        # 1 s x 3 consent rounds (each 0.8-1.2 s) after the last media: well under 10 s
        assert gone_after < 10, gone_after
        print(f"INTEROP killed FFmpeg publisher dropped after {gone_after:.1f} s")
    finally:
        await srv.close()


@pytest.mark.timeout(90)
async def test_ffmpeg_publishes_with_a_bearer_token_and_a_viewer_token_is_refused(tmp_path):
    """RFC 9725 auth with a client we did not write: FFmpeg's `authorization` option."""
    from stream.auth import Role

    from .rtc import with_auth

    cfg, auth = with_auth(_config(), tmp_path)
    srv = await start_server(cfg)
    try:
        # a viewer's token may not publish: FFmpeg's POST gets 403 and it gives up
        proc = await _publish(srv.url, 5, "baseline", tmp_path / "t0.txt",
                              "--token", auth.mint(Role.VIEWER, 300))  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 40)
        assert json.loads(out.decode().strip().splitlines()[-1])["error"]
        assert not srv.service.sessions.publishers
        proc = await _publish(srv.url, 8, "baseline", tmp_path / "t1.txt",
                              "--token", auth.mint(Role.PUBLISHER, 300))  # fmt: skip
        deadline = time.monotonic() + 20
        while srv.service.source.state != "live" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert srv.service.source.state == "live", "the publisher with a token never got in"
        (pub,) = srv.service.sessions.publishers
        assert pub.role is Role.PUBLISHER
        await asyncio.wait_for(proc.communicate(), 40)
        assert not srv.service.sessions.publishers  # its DELETE carried the token too
    finally:
        await srv.close()

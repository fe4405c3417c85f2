"""GStreamer's webrtcbin (Debian 12's 1.22, OpenSSL 3.0 DTLS with an RSA certificate) as a WHEP
viewer of `serve` and as a WHIP publisher into `serve --source webrtc`.

Before issue 15 neither worked: GStreamer's DTLS server found "no shared cipher" in aiortc's
ECDHE-ECDSA-only ClientHello (stream/webrtc/dtls.py adds the ECDHE-RSA suites for viewers;
publishers run on GnuTLS, which has them). The script runs under Debian's /usr/bin/python3
(tests/stream/clients/gst_webrtc.py); frames are counted at the output size, and latency is
the time from the server's frame stamp (the marker's number, whose source time an aiortc
viewer's data channel reports) to the frame decoded by GStreamer or the viewer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from stream.sources import marker

from .interop import Received, figures, receive, report, server_ms
from .rtc import small_config, start_server, whep

pytestmark = [pytest.mark.gpu, pytest.mark.interop]

SYSTEM_PYTHON = "/usr/bin/python3"
CLIENT = Path(__file__).with_name("clients") / "gst_webrtc.py"
OUT = (320, 180)  # 160x90 in, bilinear x2
HINT = 8.0  # the marker's block at 90 lines (4 px), doubled


def _gstreamer() -> None:
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0');"
        "from gi.repository import Gst; Gst.init(None);"
        "missing = [e for e in ('webrtcbin', 'nicesrc', 'x264enc', 'vp8enc', 'avdec_h264',"
        " 'vp8dec', 'rtph264pay') if Gst.ElementFactory.find(e) is None];"
        "print(','.join(missing))"
    )
    try:
        out = subprocess.run(
            [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"no GStreamer under {SYSTEM_PYTHON}: {e}")
    if out.returncode != 0 or out.stdout.strip():
        pytest.skip(
            f"GStreamer incomplete ({out.stdout.strip() or out.stderr.strip()[-200:]}): "
            "scripts/setup.sh installs gstreamer1.0-plugins-bad/-good/-ugly, -nice, -libav, "
            "python3-gi, gir1.2-gst-plugins-bad-1.0"
        )


async def _run_gst(mode: str, url: str, codec: str, seconds: float, *extra: str):
    """The script's decoded frames (WHEP) and its summary."""
    proc = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON,
        str(CLIENT),
        mode,
        url,
        "--codec",
        codec,
        "--seconds",
        str(seconds),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 20,
    )
    frames: list[Received] = []
    summary: dict = {}
    assert proc.stdout is not None and proc.stderr is not None
    while line := await asyncio.wait_for(proc.stdout.readline(), seconds + 30):
        data = json.loads(line)
        if "crop" in data:
            crop = np.frombuffer(base64.b64decode(data["crop"]), np.uint8)
            luma = crop.reshape(data["ch"], data["cw"])
            frames.append(Received(data["t"], data["w"], data["h"], marker.read(luma, HINT)))
        else:
            summary = data
    err = (await proc.stderr.read()).decode(errors="replace")
    await proc.wait()
    assert summary.get("done"), f"the GStreamer script ended early: {err[-2000:]}"
    assert not summary["error"], (summary, err[-2000:])
    return frames, summary


def _reference(messages: list) -> dict[int, float]:
    """The source time of each frame number, from an aiortc viewer's data channel."""
    ref = {}
    for m in messages:
        data = json.loads(m)
        if data.get("type") == "frame":
            ref[data["n"] & 0xFFFF] = data["t_src"] / 1000
    return ref


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_gstreamer_webrtcbin_views_over_whep(codec, artifacts):
    _gstreamer()
    srv = await start_server(small_config())  # testsrc: the marker is in every frame
    try:
        async with aiohttp.ClientSession() as http:
            # an aiortc viewer beside it: its data channel says when each frame was made
            clock = await whep(http, srv.url, codec=codec, datachannel=True)
            beside = asyncio.ensure_future(receive(clock.tracks[0], 14, HINT))
            frames, summary = await _run_gst("whep", f"{srv.url}/whep?codec={codec}", codec, 10)
            ours = await beside
            ref = _reference(clock.messages)
            note = f"server stamp to decoded; the server's share {server_ms(clock.messages)} ms"
            left = [v.id for v in srv.service.sessions.viewers]
            assert left == [clock.location.rsplit("/", 1)[1]], "GStreamer's DELETE did not end it"
            await clock.close(http, srv.url)
    finally:
        await srv.close()
    fig = figures("GStreamer 1.22 webrtcbin", "WHEP out", codec.upper(), frames, OUT, ref, note)
    report(fig, artifacts)
    # the same frames' latency at the aiortc viewer beside it, as a yardstick
    beside = figures("aiortc 1.16 (beside it)", "WHEP out", codec.upper(), ours, OUT, ref, note)
    report(beside, artifacts)
    assert summary["status"] == 201 and summary["deleted"] == 200, summary
    assert "connected" in summary["states"], summary
    assert fig.frames >= 0.6 * 8 * 15, fig  # ~2 s of the 10 go to start-up and gathering
    assert fig.markers_read >= 0.9 * fig.frames, fig
    assert fig.latency_median_ms is not None and fig.latency_median_ms < 1000, fig


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("codec", "profile"), [("vp8", ""), ("h264", "high"), ("h264", "constrained-baseline")]
)
async def test_gstreamer_webrtcbin_publishes_over_whip(codec, profile, artifacts):
    _gstreamer()
    cfg = small_config(
        **{
            "source.uri": "webrtc",
            "source.width": 192,  # the slate: 384x216 out, never mistaken for the stream
            "source.height": 108,
            "source.marker": True,  # the server stamps each frame it takes from GStreamer
        }
    )
    srv = await start_server(cfg)
    extra = ("--profile", profile) if profile else ()
    try:
        async with aiohttp.ClientSession() as http:
            viewer = await whep(http, srv.url, datachannel=True)
            got, (_, summary) = await asyncio.gather(
                receive(viewer.tracks[0], 13, HINT),
                _run_gst("whip", f"{srv.url}/whip", codec, 10, *extra),
            )
            ref = _reference(viewer.messages)
            note = f"server stamp to decoded; the server's share {server_ms(viewer.messages)} ms"
            assert srv.service.sessions.publishers == [], "GStreamer's DELETE did not end it"
            await viewer.close(http, srv.url)
    finally:
        await srv.close()
    name = codec.upper() + (f" {profile}" if profile else "")
    fig = figures("GStreamer 1.22 webrtcbin", "WHIP in", name, got, OUT, ref, note)
    report(fig, artifacts)
    assert summary["status"] == 201 and summary["deleted"] == 200, summary
    if profile == "high":  # offered as High (64...), not relabelled: h264.py accepts it
        assert any("profile-level-id=64" in f for f in summary["offer_fmtp"]), summary
    assert fig.frames >= 0.6 * 8 * 15, fig
    assert fig.markers_read >= 0.9 * fig.frames, fig
    assert fig.latency_median_ms is not None and fig.latency_median_ms < 1000, fig

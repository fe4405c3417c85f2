"""A WHIP publisher's sound passed on: FFmpeg's own WHIP muxer (PyAV's FFmpeg) publishes
H.264 with libopus stereo (440 Hz left, 660 Hz right) into `serve --source webrtc`; an aiortc
WHEP viewer that asked for audio hears both tones on their channels, with no Opus encode on
the server (the publisher's packets pass as they came), and an SRT push carries them as AAC
(decoded once for it)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import pytest

from .pulse import peak_hz
from .rtc import small_config, start_server
from .sinks.servers import SrtListener
from .sinks.test_push_audio import assert_tones, read_audio
from .test_audio import audio_direction, viewer
from .test_audio_stereo import receive_stereo

CLIENT = Path(__file__).with_name("clients") / "ffmpeg_whip.py"
ROOT = Path(__file__).resolve().parents[2]


async def publish(url: str, seconds: float, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(CLIENT), url + "/whip", "--seconds", str(seconds),
        "--size", "160x90", "--fps", "15", *extra,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def first_packets(track, timeout: float) -> None:
    """Wait for the viewer's audio to start (the publisher takes a few seconds to connect)."""
    await asyncio.wait_for(track.recv(), timeout)


@pytest.mark.gpu
@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_an_ffmpeg_publishers_opus_reaches_viewers_and_pushes(tmp_path) -> None:
    srt = SrtListener.start(tmp_path)
    cfg = small_config(
        **{
            "source.uri": "webrtc",
            "push.urls": [f"srt://127.0.0.1:{srt.port}?latency=120"],
        }
    )
    try:
        srv = await start_server(cfg)
        try:
            assert srv.service.audio.health()["source"] == "publisher"
            async with aiohttp.ClientSession() as http:
                pc, answer, tracks = await viewer(http, srv.url)
                assert audio_direction(answer) == "sendonly" and "stereo=1" in answer
                proc = await publish(srv.url, 14.0, "--tone", "440:660")
                await first_packets(tracks["audio"], 40)
                pcm = await receive_stereo(tracks["audio"], 3.0)
                publisher = [s.info() for s in srv.service.sessions.publishers]
                audio = srv.service.audio.stats()
                pushes = srv.service.push.stats()
                out, err = await asyncio.wait_for(proc.communicate(), 60)
                await pc.close()
        finally:
            await srv.close()
    finally:
        srt.stop()
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert not summary["error"], (summary, err.decode()[-2000:])
    assert summary["audio_packets"] > 100, summary
    # the viewer: both tones on their channels
    tail = pcm[:, pcm.shape[1] // 2 :].astype(float)
    peaks = [peak_hz(ch) for ch in tail]
    print(f"viewer's peaks L {peaks[0]:.1f} R {peaks[1]:.1f}; publisher {publisher}")
    assert abs(peaks[0] - 440) < 5 and abs(peaks[1] - 660) < 5, peaks
    # passed through: the server's Opus encoder never ran, the publisher's packets were sent
    print("audio stats:", {k: audio[k] for k in ("source", "chunks", "encoder", "push_encoder")})
    assert audio["encoder"]["packets"] == 0, audio["encoder"]
    assert publisher[0]["audio_in"]["passed"] > 50, publisher
    assert audio["viewers"][0]["sent"] > 50, audio["viewers"]
    # the push: AAC made from the decoded packets
    assert pushes[0]["audio"] == "aac" and pushes[0]["audio_packets"] > 20, pushes
    codec, ts = read_audio(str(srt.out), 1000, 10)
    assert codec == "aac"
    assert_tones(ts[:, -3 * 48000 :], "srt push of the publisher's sound")


async def test_what_a_publisher_sends_is_bounded_before_it_reaches_viewers() -> None:
    """Packets over 1500 bytes, repeats, steps back and a flood past the byte budget are
    dropped (counted); a 20 s jump of the publisher's RTP time is one packet's step for the
    viewers; a new publisher continues the viewers' clock."""
    from stream.audio import OpusTrack, SharedOpus
    from stream.audio.aac import SharedAac
    from stream.audio.relay import BURST_BYTES, PublisherAudio

    opus = SharedOpus()
    relay = PublisherAudio(opus, SharedAac(lambda: 0.0))
    track = OpusTrack(opus, maxlen=10_000)
    ts = 1_000_000
    relay.packet("a", b"x" * 100, ts)
    relay.packet("a", b"x" * 2000, ts + 960)  # too big
    relay.packet("a", b"x" * 100, ts)  # a repeat
    relay.packet("a", b"x" * 100, ts - 960)  # a step back
    relay.packet("a", b"x" * 100, ts + 960)
    relay.packet("a", b"x" * 100, ts + 960 + 20 * 48000)  # 20 s later: restarts the mapping
    relay.packet("b", b"x" * 100, 5)  # a new publisher, its own random RTP time
    pts = [p.pts for p, _ in track.queue]
    assert relay.dropped == 3 and relay.restarts == 1, (relay.dropped, relay.restarts)
    assert [b - a for a, b in zip(pts, pts[1:], strict=False)] == [960, 960, 960], pts
    # a flood: 1000 packets of 1000 bytes at once pass only the burst's worth
    before = len(track.queue)
    for k in range(1000):
        relay.packet("b", b"y" * 1000, 5 + 960 * (k + 1))
    passed = len(track.queue) - before
    assert passed <= BURST_BYTES // 1000 + 2, passed
    assert relay.dropped >= 1000 - passed + 3
    track.stop()

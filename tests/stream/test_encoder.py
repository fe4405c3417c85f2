"""Shared encoders: one encode per frame for any number of viewers, keyframes on join and
on PLI, and a slow viewer that loses frames without holding anyone else up."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket

from stream.encode import PacketTrack, SharedEncoder
from stream.sources import FrameMeta
from stream.sources.scene import Scene

from .rtc import recv_frames, small_config, start_server, whep


def _frames(n: int, w: int = 160, h: int = 90):
    scene = Scene(w, h)
    out = []
    for k in range(n):
        f = scene.frame(k, 30)
        f.pts = k * 3000
        f.time_base = Fraction(1, 90000)
        out.append(f)
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_one_encode_per_frame_for_three_viewers_and_a_slow_one_loses_frames(codec):
    enc = SharedEncoder(
        codec, bitrate=300_000, keyframe_interval_s=100, min_keyframe_interval_s=0.5
    )
    fast = [PacketTrack(enc, maxlen=4) for _ in range(2)]
    slow = PacketTrack(enc, maxlen=4)  # never read
    got = [[] for _ in fast]

    async def drain(i, t):
        while True:
            got[i].append(await t.recv())

    readers = [asyncio.ensure_future(drain(i, t)) for i, t in enumerate(fast)]
    frames = _frames(40)
    for f in frames:
        enc.submit(f, FrameMeta(0, f.pts, 0.0))
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert enc.frames_encoded == 40 - enc.dropped
    for g in got:
        assert len(g) == enc.frames_encoded  # every packet, each encoded once
        assert g[0].is_keyframe
        assert all(a is b for a, b in zip(g, got[0], strict=True))  # the same Packet objects
    assert slow.dropped > 0 and len(slow.queue) <= 4
    assert enc.keyframes >= 2  # the slow viewer asked for one to resume
    for r in readers:
        r.cancel()
    for t in [*fast, slow]:
        t.stop()
    assert not enc.subscribers
    await enc.close()


@pytest.mark.timeout(60)
async def test_a_new_viewer_starts_on_a_keyframe():
    enc = SharedEncoder("vp8", bitrate=300_000, keyframe_interval_s=100)
    a = PacketTrack(enc, maxlen=100)
    frames = _frames(30)
    for f in frames[:15]:
        enc.submit(f, None)
        await asyncio.sleep(0.02)
    k0 = enc.keyframes
    b = PacketTrack(enc, maxlen=100)
    for f in frames[15:]:
        enc.submit(f, None)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert enc.keyframes == k0 + 1
    first = await b.recv()
    assert first.is_keyframe
    assert len(a.queue) > len(b.queue)
    a.stop()
    b.stop()
    await enc.close()


@pytest.mark.timeout(60)
async def test_keyframe_requests_inside_the_gap_are_merged_and_deferred_not_dropped():
    """A viewer that lost the keyframe it just got sent asks again at once: it must get the
    next one at the end of the gap, not wait for the periodic keyframe (100 s here)."""
    enc = SharedEncoder(
        "vp8", bitrate=300_000, keyframe_interval_s=100, min_keyframe_interval_s=0.5
    )
    a = PacketTrack(enc, maxlen=100)
    frames = _frames(30)
    enc.submit(frames[0], None)  # the subscriber's keyframe
    await asyncio.sleep(0.05)
    k0 = enc.keyframes
    for _ in range(5):  # a PLI storm right after it
        enc.request_keyframe()
    for f in frames[1:]:
        enc.submit(f, None)
        await asyncio.sleep(0.03)
    await asyncio.sleep(0.1)
    assert enc.keyframes == k0 + 1
    keys = [i for i, (p, _) in enumerate(a.queue) if p.is_keyframe]
    assert len(keys) == 2 and keys[1] * 0.03 >= 0.4  # one, after the gap
    a.stop()
    await enc.close()


@pytest.mark.gpu
@pytest.mark.timeout(60)
async def test_pli_from_a_viewer_reaches_the_shared_encoder():
    srv = await start_server(small_config())
    try:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url)
            await recv_frames(v.tracks[0], 10, 30)
            enc = srv.service.encoders[("main", "vp8")]
            session = srv.service.sessions.viewers[0]
            sender = session.pc.getTransceivers()[0].sender
            await asyncio.sleep(1.1)  # PLIs closer than 1 s to a keyframe are merged (config)
            k0 = enc.keyframes
            await sender._handle_rtcp_packet(
                RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc)
            )
            await asyncio.sleep(0.5)  # a few more frames through the server
            assert session.tracks[0].pli == 1
            assert enc.keyframes == k0 + 1
            await v.close(http, srv.url)
    finally:
        await srv.close()

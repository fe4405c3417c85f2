"""RTMP into nginx (libnginx-mod-rtmp) and SRT into srt-tools' srt-live-transmit, both read back
with PyAV: frames at the output size, from the one H.264 encode the viewers share."""

from __future__ import annotations

import asyncio

import aiohttp
import av
import pytest

from ..clips import make_clip
from ..rtc import recv_frames, small_config, start_server, whep
from .servers import Nginx, SrtListener, read_back, read_back_async

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
OUT = (320, 180)  # 160x90 testsrc, bilinear x2
KEY = "SECRETKEY42"


async def wait_live(service, n: int, timeout: float = 20.0) -> list[dict]:
    for _ in range(int(timeout / 0.2)):
        stats = service.push.stats()
        if sum(s["state"] == "live" for s in stats) >= n:
            return stats
        await asyncio.sleep(0.2)
    raise AssertionError(f"pushes not live: {service.push.stats()}")


@pytest.mark.timeout(120)
async def test_rtmp_and_srt_pushes_share_the_viewers_encode(tmp_path, caplog):
    nginx = Nginx.create(tmp_path)
    nginx.start()
    srt = SrtListener.start(tmp_path)
    cfg = small_config(**{"push.urls": [nginx.url(KEY), f"srt://127.0.0.1:{srt.port}?latency=120"]})
    srv = await start_server(cfg)
    svc = srv.service
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url, codec="h264")
            await wait_live(svc, 2)
            rtmp = await read_back_async(nginx.url(KEY), 30, 30)
            assert len(rtmp.sizes) >= 30, (rtmp.error, nginx.log())
            assert set(rtmp.sizes) == {OUT} and rtmp.video_codec == "h264"
            assert len(await recv_frames(v.tracks[0], 10, 20)) == 10
            async with http.get(srv.url + "/api/stats") as r:
                stats = await r.json()
            async with http.get(srv.url + "/metrics") as r:
                metrics = await r.text()
            await v.close(http, srv.url)
    finally:
        await srv.close()
        srt.stop()
        nginx.stop()
    # one encode per codec: the viewer and both pushes got the packets of one H.264 encoder
    encoders = stats["encoders"]
    assert [(e["stream"], e["codec"]) for e in encoders] == [("main", "h264")], encoders
    encoded = encoders[0]
    pushes = stats["push"]
    assert [(p["kind"], p["state"]) for p in pushes] == [("rtmp", "live"), ("srt", "live")]
    for p in pushes:
        assert 0 < p["packets"] <= encoded["frames_encoded"], (p, encoded)
        assert 0 < p["bytes"] <= encoded["bytes"] and p["bitrate_bps"] > 0
        assert p["reconnects"] == 0
    assert pushes[0]["target"] == f"rtmp://127.0.0.1:{nginx.port}/live/***"
    assert 'framesmith_push_state{kind="rtmp",sink="0",state="live"} 1.0' in metrics
    assert 'framesmith_push_bitrate_bps{kind="srt",sink="1"}' in metrics
    # the stream key reaches nginx and nowhere else
    assert KEY not in str(stats) and KEY not in metrics and KEY not in caplog.text
    assert f"name='{KEY}'" in nginx.log()
    got = read_back(str(srt.out), 1000, 10)
    assert len(got.sizes) >= 20 and set(got.sizes) == {OUT} and got.video_codec == "h264"


@pytest.mark.timeout(120)
async def test_a_file_source_audio_is_passed_through_unchanged(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=60, width=160, height=90, fps=20, audio=True)
    nginx = Nginx.create(tmp_path)
    nginx.start()
    srt = SrtListener.start(tmp_path)
    cfg = small_config(
        **{"source.uri": str(clip), "push.urls": [nginx.url("a"), f"srt://127.0.0.1:{srt.port}"]}
    )
    srv = await start_server(cfg)
    try:
        await wait_live(srv.service, 2)
        rtmp = await read_back_async(nginx.url("a"), 40, 30, analyzeduration="2000000")
        stats = srv.service.push.stats()
    finally:
        await srv.close()
        srt.stop()
        nginx.stop()
    assert rtmp.audio_codec == "aac" and rtmp.audio_frames >= 20, (rtmp, stats)
    assert set(rtmp.sizes) == {OUT}
    assert [s["audio"] for s in stats] == ["aac", "aac"] and all(s["audio_packets"] for s in stats)
    ts = read_back(str(srt.out), 1000, 10)
    assert ts.audio_codec == "aac" and ts.audio_frames >= 20 and set(ts.sizes) == {OUT}
    # the audio kept its timing: it starts with the pictures and lasts as long
    with av.open(str(srt.out)) as c:
        spans = {}
        for s in (c.streams.audio[0], c.streams.video[0]):
            pts = [p.pts for p in c.demux(s) if p.pts is not None]
            c.seek(0)
            spans[s.type] = (float(min(pts) * s.time_base), float(max(pts) * s.time_base))
    print("first and last timestamps of audio and video in the SRT recording:", spans)
    assert abs(spans["audio"][0] - spans["video"][0]) < 0.15, spans
    assert abs(spans["audio"][1] - spans["video"][1]) < 0.3, spans


@pytest.mark.timeout(120)
async def test_a_killed_srt_listener_is_noticed_and_the_push_reconnects(tmp_path):
    first = SrtListener.start(tmp_path / "a", "")
    cfg = small_config(
        **{"push.urls": [f"srt://127.0.0.1:{first.port}"], "push.backoff_max_s": 1.0}
    )
    srv = await start_server(cfg)
    second = None
    try:
        await wait_live(srv.service, 1)
        first.proc.kill()  # no goodbye: SRT notices by its peer idle timeout (5 s)
        first.proc.wait()
        for _ in range(100):
            if srv.service.push.stats()[0]["state"] != "live":
                break
            await asyncio.sleep(0.1)
        lost = srv.service.push.stats()[0]
        second = SrtListener.start(tmp_path / "b", "", port=first.port)
        await asyncio.sleep(1)
        await wait_live(srv.service, 1)
        await asyncio.sleep(3)
        back = srv.service.push.stats()[0]
    finally:
        await srv.close()
        for listener in (first, second):
            if listener is not None:
                listener.stop()
    assert lost["state"] != "live" and "SrtError" in lost["error"], lost
    assert back["state"] == "live" and back["reconnects"] >= 1, back
    assert second is not None
    got = read_back(str(second.out), 1000, 10)
    assert len(got.sizes) >= 20 and set(got.sizes) == {OUT}

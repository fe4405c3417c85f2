"""The streaming service end to end on loopback: WHEP viewers, WHIP publishers, fan-out.

Small frames (160x90 source) because lavapipe runs the "GPU" on the same two cores.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

import infer
from stream.sources import marker
from stream.sources.frames import planes_of
from stream.tools.soak.publisher import SceneTrack

from .clips import tiny_upscaler
from .rtc import (
    nearest_upscaler,
    recv_frames,
    small_config,
    start_server,
    whep,
    whip,
)

pytestmark = [pytest.mark.gpu]


def markers_of(frames) -> list[int | None]:
    return [marker.read(planes_of(f)[0]) for f in frames]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_whep_viewer_receives_model_output_at_2x_with_readable_marker(codec):
    # a real CNN graph through the engine (Conv-Relu-Conv-DepthToSpace) whose weights make it
    # a nearest-neighbour x2, so the marker must survive model, colour passes and codec
    srv = await start_server(
        small_config(**{"model.mode": "model"}), infer.load(nearest_upscaler()), "nearest_x2"
    )
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url, codec=codec)
            frames = (await recv_frames(v.tracks[0], 30, 40))[5:]
            assert len(frames) >= 20, f"only {len(frames)} frames"
            assert {(f.width, f.height) for f in frames} == {(320, 180)}
            ns = markers_of(frames)
            read = [n for n in ns if n is not None]
            assert len(read) >= 0.9 * len(ns), ns
            assert read == sorted(read) and len(set(read)) == len(read)
            assert srv.service.stats()["sessions"][0]["codec"] == codec
            assert srv.service.health()["model"] == "nearest_x2"
            await v.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.timeout(60)
async def test_random_weight_model_streams_at_2x():
    srv = await start_server(
        small_config(**{"model.mode": "model"}), infer.load(tiny_upscaler()), "tiny_x2"
    )
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url)
            frames = await recv_frames(v.tracks[0], 10, 30)
            assert frames and (frames[-1].width, frames[-1].height) == (320, 180)
            await v.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_marker_survives_the_codec_at_2x(codec):
    srv = await start_server(small_config())  # bilinear x2: the picture stays readable
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url, codec=codec)
            frames = await recv_frames(v.tracks[0], 30, 40)
            frames = frames[5:]  # past the first keyframe's warm-up
            assert frames and {(f.width, f.height) for f in frames} == {(320, 180)}
            ns = markers_of(frames)
            read = [n for n in ns if n is not None]
            assert len(read) >= 0.9 * len(ns), ns
            assert read == sorted(read) and len(set(read)) == len(read)
            await v.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.timeout(120)
async def test_whip_publisher_to_whep_viewer_and_takeover():
    # the slate is 192x108 so its frames (384x216) are told apart from the publisher's
    cfg = small_config(**{"source.uri": "webrtc", "source.width": 192, "source.height": 108})
    srv = await start_server(cfg)
    svc = srv.service
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url)
            track = v.tracks[0]
            slate = await recv_frames(track, 2, 30)
            assert slate and (slate[-1].width, slate[-1].height) == (384, 216)
            assert svc.source.state == "no source"

            pub, loc = await whip(http, srv.url, SceneTrack(160, 90, 15))
            got = await _frames_of_size(track, (320, 180), 10, 40)
            assert len(got) >= 10, "viewer never saw the publisher's frames"
            read = [n for n in markers_of(got) if n is not None]
            assert len(read) >= 8 and read == sorted(read)  # the publisher's own counter
            assert svc.source.state == "live" and len(svc.sessions.publishers) == 1

            # a second publisher takes over; the first one's session is closed
            pub2, loc2 = await whip(http, srv.url, SceneTrack(160, 90, 15))
            await asyncio.sleep(1.0)
            assert [s.id for s in svc.sessions.publishers] == [loc2.rsplit("/", 1)[1]]
            got = await _frames_of_size(track, (320, 180), 5, 30)
            assert len(got) >= 5

            # the publisher leaves: viewers go back to the "no source" slate
            async with http.delete(srv.url + loc2) as r:
                assert r.status == 200
            await pub2.close()
            await pub.close()
            back = await _frames_of_size(track, (384, 216), 2, 30)
            assert back, "no slate after the publisher left"
            assert svc.source.state == "no source"
            await v.close(http, srv.url)
    finally:
        await srv.close()


async def _frames_of_size(track, size, n, timeout):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        got = await recv_frames(track, 1, deadline - time.monotonic())
        if not got:
            break
        if (got[0].width, got[0].height) == size:
            out.append(got[0])
    return out


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_three_viewers_for_20_s_share_one_pipeline_and_one_encoder():
    srv = await start_server(small_config())
    svc = srv.service
    duration = 20.0
    try:
        async with aiohttp.ClientSession() as http:
            viewers = [await whep(http, srv.url) for _ in range(3)]
            enc = svc.encoders[("main", "vp8")]
            pipe = svc.pipeline(svc.mode)
            before_enc, before_gpu = enc.frames_encoded, pipe.stats.frames_out

            async def watch(v):
                times = []
                end = time.monotonic() + duration
                while time.monotonic() < end:
                    try:
                        await asyncio.wait_for(v.tracks[0].recv(), 3.0)
                    except TimeoutError:
                        break
                    times.append(time.monotonic())
                return times

            results = await asyncio.gather(*(watch(v) for v in viewers))
            encoded = enc.frames_encoded - before_enc
            processed = pipe.stats.frames_out - before_gpu
            for times in results:
                gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
                assert len(times) >= 0.5 * 15 * duration, f"{len(times)} frames in {duration} s"
                assert max(gaps) < 2.0, f"a viewer stalled {max(gaps):.1f} s"
            # once per frame, not once per viewer
            source_frames = 15 * duration
            assert processed <= source_frames * 1.1, (processed, source_frames)
            assert encoded <= processed + 2, (encoded, processed)
            sent = [t.sent for s in svc.sessions.viewers for t in s.tracks]
            assert all(x <= enc.frames_encoded for x in sent)
            assert enc.stats()["subscribers"] == 3
            for v in viewers:
                await v.close(http, srv.url)
            await asyncio.sleep(0.5)
            assert svc.sessions.viewers == [] and not enc.subscribers
    finally:
        await srv.close()


@pytest.mark.timeout(60)
async def test_data_channel_timings_pings_and_input_reach_the_scene():
    srv = await start_server(small_config())
    svc = srv.service
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url, datachannel=True)
            await recv_frames(v.tracks[0], 10, 30)
            deadline = time.monotonic() + 10
            while v.channel.readyState != "open" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            v.channel.send(json.dumps({"type": "ping", "t": 123.0}))
            v.channel.send(json.dumps({"type": "input", "kind": "mousemove", "x": 0.25, "y": 0.75}))
            v.channel.send(json.dumps({"type": "input", "kind": "keydown", "key": "w"}))
            v.channel.send("not json")  # ignored, the session lives on
            await recv_frames(v.tracks[0], 5, 10)
            msgs = [json.loads(m) for m in v.messages]
            kinds = {m["type"] for m in msgs}
            assert {"hello", "frame", "pong"} <= kinds
            frame = next(m for m in msgs if m["type"] == "frame")
            assert frame["t_sent"] >= frame["t_src"] and "pipeline" in frame["stages"]
            assert "encode_vp8" in frame["stages"]
            assert svc.source.scene.cursor == (0.25, 0.75)
            assert svc.source.scene.last_key == "w"
            assert svc.input_events == 2
            await v.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.timeout(90)
async def test_compare_stream_and_mode_switch():
    model = infer.load(tiny_upscaler())
    srv = await start_server(
        small_config(**{"model.mode": "model", "model.compare": True}),
        model,
        "tiny_x2",
        {"nearest": infer.load(nearest_upscaler())},
    )
    svc = srv.service
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url, videos=2)
            main, comp = await asyncio.gather(
                recv_frames(v.tracks[0], 8, 40), recv_frames(v.tracks[1], 8, 40)
            )
            assert main and comp
            assert (comp[-1].width, comp[-1].height) == (320, 180)
            assert marker.read(planes_of(comp[-1])[0]) is not None  # bilinear keeps it
            assert svc.encoders[("compare", "vp8")].frames_encoded > 0
            async with http.post(srv.url + "/api/mode", json={"mode": "bicubic"}) as r:
                assert r.status == 200 and (await r.json())["mode"] == "bicubic"
            await recv_frames(v.tracks[0], 8, 30)
            assert svc.pipeline("bicubic").stats.frames_out > 0
            modes = ["model", "model:nearest", "bilinear", "bicubic", "planar", "edge", "bypass"]
            assert svc.modes == modes
            async with http.post(srv.url + "/api/mode", json={"mode": "edge"}) as r:
                assert r.status == 200  # the edge-adaptive scaler (FSR 1), same output size
            got = await recv_frames(v.tracks[0], 8, 30)
            assert svc.pipeline("edge").stats.frames_out > 0
            assert (got[-1].width, got[-1].height) == (main[-1].width, main[-1].height)
            async with http.post(srv.url + "/api/mode", json={"mode": "model:nearest"}) as r:
                assert r.status == 200
            await recv_frames(v.tracks[0], 8, 30)  # the second CNN keeps the marker
            got = await recv_frames(v.tracks[0], 5, 30)
            assert any(marker.read(planes_of(f)[0]) is not None for f in got)
            assert svc.pipeline("model:nearest").stats.frames_out > 0
            await v.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.timeout(90)
async def test_a_model_switched_to_is_compiled_while_the_old_mode_keeps_running():
    """On lavapipe a model's first compile at a size (and timing its kernels, on a new
    machine) took 5-16 s with no frame; now the old mode runs until the model is ready."""
    import threading

    srv = await start_server(
        small_config(**{"model.mode": "bilinear"}),
        infer.load(tiny_upscaler()),
        "tiny_x2",
        {"nearest": infer.load(nearest_upscaler())},
    )
    svc = srv.service
    gate = threading.Event()
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url)
            await recv_frames(v.tracks[0], 5, 40)
            nearest = svc.pipeline("model:nearest")
            nearest._compile_thread.submit(gate.wait, 30)  # its compile waits behind this
            async with http.post(srv.url + "/api/mode", json={"mode": "model:nearest"}) as r:
                assert r.status == 200 and (await r.json())["mode"] == "model:nearest"
            bilinear_before = svc.pipeline("bilinear").stats.frames_out
            await recv_frames(v.tracks[0], 8, 30)  # frames keep coming meanwhile ...
            assert svc.running_mode() == "bilinear" and nearest.stats.frames_out == 0
            assert svc.pipeline("bilinear").stats.frames_out > bilinear_before
            async with http.get(srv.url + "/api/stats") as r:
                assert (await r.json())["adapt"]["running_mode"] == "bilinear"
            gate.set()  # ... and the model takes over once compiled
            for _ in range(200):
                if nearest.stats.frames_out > 0:
                    break
                await asyncio.sleep(0.1)
            assert svc.running_mode() == "model:nearest" and nearest.stats.frames_out > 0
            await v.close(http, srv.url)
    finally:
        gate.set()
        await srv.close()


@pytest.mark.timeout(60)
async def test_healthz_metrics_and_stats():
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url)
            await recv_frames(v.tracks[0], 10, 30)
            async with http.get(srv.url + "/healthz") as r:
                h = await r.json()
            assert h["status"] == "ok" and h["viewers"] == 1
            assert h["source"]["kind"] == "testsrc" and h["source"]["state"] == "live"
            assert "device" not in h  # the GPU's name is for admins (/api/stats)
            assert set(h["source"]) == {"kind", "state", "width", "height", "fps", "frames"}
            async with http.get(srv.url + "/metrics") as r:
                text = await r.text()
                assert r.status == 200 and r.content_type == "text/plain"
            for name in (
                "framesmith_frames_processed_total",
                "framesmith_frames_dropped_total",
                "framesmith_stage_seconds_bucket",
                "framesmith_viewers 1.0",
                "framesmith_encoder_fps",
                "framesmith_frames_encoded",
            ):
                assert name in text, name
            async with http.get(srv.url + "/api/stats") as r:
                s = await r.json()
            assert s["encoders"][0]["frames_encoded"] > 0
            assert s["sessions"][0]["tracks"][0]["sent"] > 0
            async with http.get(srv.url + "/") as r:
                assert r.status == 200 and "app.js" in await r.text()
            async with http.get(srv.url + "/static/marker.js") as r:
                assert r.status == 200
            await v.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.timeout(90)
async def test_file_source_loops_at_its_own_rate_with_a_stamped_marker(tmp_path):
    from .clips import make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=20, width=160, height=90, fps=20, audio=False)
    srv = await start_server(small_config(**{"source.uri": str(clip), "source.marker": True}))
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url)
            frames = (await recv_frames(v.tracks[0], 40, 40))[3:]  # 2 s: the clip loops
            assert len(frames) >= 30
            assert {(f.width, f.height) for f in frames} == {(320, 180)}
            read = [n for n in markers_of(frames) if n is not None]
            assert len(read) >= 0.9 * len(frames)
            assert max(read) >= 25, "the clip did not loop (20 frames)"
            info = srv.service.health()["source"]
            assert info["kind"] == "file" and info["fps"] == 20 and info["state"] == "live"
            await v.close(http, srv.url)
    finally:
        await srv.close()

import asyncio
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation

import infer
from stream.pipeline import FramePipeline
from stream.sources.frames import frame_from_planes, planes_of

from .clips import smooth_rgb, tiny_upscaler

pytestmark = pytest.mark.gpu

W, H = 322, 182  # not a multiple of any workgroup size


def random_frame(seed: int = 0, width: int = W, height: int = H) -> av.VideoFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(16, 236, (height, width), dtype=np.uint8)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    u = rng.integers(16, 241, (ch, cw), dtype=np.uint8)
    v = rng.integers(16, 241, (ch, cw), dtype=np.uint8)
    return frame_from_planes(y, u, v)


@pytest.mark.parametrize("colorspace", [1, 6])  # BT.709, BT.601
@pytest.mark.parametrize("full_range", [False, True])
@pytest.mark.parametrize("siting", ["center", "left"])
async def test_colour_round_trip_within_one_code_value(colorspace, full_range, siting):
    frame = random_frame(1)
    frame.colorspace = colorspace
    frame.color_range = 2 if full_range else 1
    pipe = FramePipeline(mode="bypass", chroma_siting=siting)
    out = await pipe.process(frame)
    for got, want in zip(planes_of(out), planes_of(frame), strict=True):
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want).max() <= 1
    assert (out.colorspace, out.color_range) == (colorspace, frame.color_range)
    pipe.close()


@pytest.mark.parametrize("colorspace,name", [(1, "itu709"), (6, "itu601")])
@pytest.mark.parametrize("full_range", [False, True])
async def test_rgb_matches_swscale_within_two_code_values(colorspace, name, full_range):
    rgb = smooth_rgb(W, H, 0.7)
    rng_name = "JPEG" if full_range else "MPEG"
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=name, dst_color_range=rng_name
    )
    frame.colorspace, frame.color_range = colorspace, 2 if full_range else 1
    ref = frame.reformat(
        format="rgb24",
        src_colorspace=name,
        src_color_range=rng_name,
        interpolation=Interpolation.BILINEAR
        | Interpolation.ACCURATE_RND
        | Interpolation.FULL_CHR_H_INT,
    ).to_ndarray()
    pipe = FramePipeline(mode="bypass", keep_tensors=True)
    await pipe.process(frame)
    ours = pipe.last_tensors["rgb_in"][0].transpose(1, 2, 0)
    ours = np.clip(np.round(ours * 255), 0, 255).astype(int)
    assert np.abs(ours - ref).max() <= 2
    pipe.close()


@pytest.mark.parametrize("precision, rtol", [("fp32", 1e-4), ("fp16", 2e-3)])
async def test_model_output_through_pipeline_equals_model_run(precision, rtol):
    # fp16: the colour passes write and read the model's f16 tensors directly
    model = infer.load(tiny_upscaler(), precision=precision)
    pipe = FramePipeline(model, keep_tensors=True)
    out = await pipe.process(random_frame(2))
    assert (out.width, out.height) == (2 * W, 2 * H)
    rgb_in, rgb_out = pipe.last_tensors["rgb_in"], pipe.last_tensors["rgb_out"]
    ref = model.run(rgb_in)
    assert ref.shape == rgb_out.shape == (1, 3, 2 * H, 2 * W)
    assert float(np.abs(rgb_out - ref).max() / np.abs(ref).max()) < rtol
    pipe.close()


def numbered_frames(n: int, width: int = 96, height: int = 54):
    base = random_frame(3, width, height)
    y, u, v = planes_of(base)
    frames = []
    for i in range(n):
        f = frame_from_planes(y, u, v)
        f.pts = 1000 + 3 * i
        f.time_base = Fraction(1, 90000)
        frames.append(f)
    return frames


async def _source(frames, delay: float = 0.0):
    for f in frames:
        if delay:
            await asyncio.sleep(delay)
        yield f


async def test_offline_keeps_order_and_pts_and_drops_nothing():
    frames = numbered_frames(300)
    pipe = FramePipeline(infer.load(tiny_upscaler()), slots=3)
    out = [f async for f in pipe.frames(_source(frames), live=False)]
    assert [f.pts for f in out] == [f.pts for f in frames]
    assert all(f.time_base == frames[0].time_base for f in out)
    assert pipe.stats.dropped == 0 and pipe.stats.frames_out == 300
    pipe.close()


async def test_live_drops_oldest_when_behind_and_counts_it():
    frames = numbered_frames(120)
    pipe = FramePipeline(infer.load(tiny_upscaler()), slots=2)
    out = []
    async for f in pipe.frames(_source(frames), live=True):
        out.append(f.pts)
        await asyncio.sleep(0.02)  # a consumer slower than the source
    assert pipe.stats.dropped > 0
    assert len(out) + pipe.stats.dropped == 120
    assert out == sorted(out) and out[-1] == frames[-1].pts  # newest wins
    pipe.close()


async def test_event_loop_stays_responsive_while_frames_process():
    frames = numbered_frames(20, 320, 180)
    pipe = FramePipeline(infer.load(tiny_upscaler()))
    gaps = []

    async def ticker():
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.ensure_future(ticker())
    n = 0
    async for _ in pipe.frames(_source(frames)):
        n += 1
    task.cancel()
    assert n == 20
    assert max(gaps) < 0.15, f"event loop stalled {max(gaps) * 1000:.0f} ms"
    pipe.close()


async def test_stage_timings_are_recorded():
    pipe = FramePipeline(infer.load(tiny_upscaler()))
    async for _ in pipe.frames(_source(numbered_frames(5))):
        pass
    s = pipe.stats.summary()
    for stage in ("upload_ms", "submit_ms", "readback_ms", "total_ms"):
        assert s[stage]["mean"] > 0
    if "timestamp-query" in pipe.device.features:
        assert s["gpu_ms"]["mean"] > 0
    pipe.close()


async def test_nv12_input_is_converted_on_the_gpu():
    frame = random_frame(4).reformat(format="nv12")
    pipe = FramePipeline(mode="bypass")
    out = await pipe.process(frame)
    ref = planes_of(frame.reformat(format="yuv420p"))
    for got, want in zip(planes_of(out), ref, strict=True):
        assert np.abs(got.astype(int) - want).max() <= 1
    pipe.close()

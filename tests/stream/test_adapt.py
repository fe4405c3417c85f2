"""Dynamic resolution: the controller on recorded GPU timings (deterministic), and the pipeline
running the model on a scaled-down input while the output size stays the same."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from threading import Event

import av
import numpy as np
import pytest

import infer
from stream.adaptation import Adaptation
from stream.config import AdaptConfig
from stream.pipeline import FramePipeline, FrameTiming
from stream.pipeline.adapt import AdaptSettings, Reason, ScaleController
from stream.sources.frames import planes_of

from .clips import smooth_rgb
from .rtc import nearest_upscaler

FPS = 30.0
BUDGET = 1000 / FPS


def yuv_frame(width: int = 160, height: int = 90) -> av.VideoFrame:
    """The smooth test picture, as a decoder hands it over."""
    rgb = smooth_rgb(width, height, 0.3)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


async def until(condition: Callable[[], bool]) -> None:
    """Up to 10 s for a compile in the background to be taken up (the test asserts after)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def model_and_fallback() -> Iterator[tuple[FramePipeline, FramePipeline, Adaptation, Event]]:
    """A model pipeline, the planar fallback, the adaptation between them at 30 fps, and a
    gate a test can hold the model's compiles behind (released before the pipelines close)."""
    pipe = FramePipeline(infer.load(nearest_upscaler()), slots=2)
    planar = FramePipeline(mode="planar", scale=2.0, slots=2)
    gate = Event()
    try:
        yield pipe, planar, Adaptation(AdaptConfig(), fps=30.0), gate
    finally:
        gate.set()
        pipe.close()
        planar.close()


def replay(ctl: ScaleController, gpu_ms_at_full: float, seconds: float, fixed_ms: float = 0.0):
    """Frames at 30 fps whose GPU time is proportional to the pixel count (scale^2), as the
    controller assumes; the fallback costs `fixed_ms`. Returns the decisions."""
    decisions = []
    for k in range(int(seconds * FPS)):
        now = k / FPS
        ms = fixed_ms if ctl.fallback else gpu_ms_at_full * ctl.scale**2
        d = ctl.observe(ms, now)
        if d is not None:
            decisions.append((round(now, 2), d))
    return decisions


def test_a_light_model_keeps_full_resolution():
    ctl = ScaleController(AdaptSettings(BUDGET))
    assert replay(ctl, 10.0, 20) == []
    assert ctl.scale == 1.0 and not ctl.fallback


def test_a_heavy_model_settles_on_the_scale_that_fits_the_budget():
    ctl = ScaleController(AdaptSettings(BUDGET))
    decisions = replay(ctl, 100.0, 30)
    assert decisions and decisions[0][1].reason is Reason.PANIC  # two frames over: at once
    assert decisions[0][0] < 0.2
    # time is proportional to scale^2: sqrt(30 ms target / 100 ms) = 0.548 -> 0.55 at most
    assert 0.45 <= ctl.scale <= 0.55
    assert 100.0 * ctl.scale**2 <= BUDGET * 0.85
    assert len(decisions) <= 3  # settles, no oscillation


def test_when_even_the_floor_is_over_budget_it_falls_back_and_retries_later():
    ctl = ScaleController(AdaptSettings(BUDGET, ramp_up_s=10.0))
    decisions = replay(ctl, 2000.0, 100, fixed_ms=5.0)
    kinds = [(d.fallback, d.reason) for _, d in decisions]
    assert (True, Reason.FLOOR) in kinds
    retries = [t for t, d in decisions if d.reason is Reason.RETRY]
    assert len(retries) >= 2
    # each retry led straight back to overuse: the wait before the next one doubles
    assert retries[1] - retries[0] > 1.8 * 10
    assert ctl.fallback


def test_a_load_change_is_followed_both_ways_with_ramp_up_delay():
    ctl = ScaleController(AdaptSettings(BUDGET, ramp_up_s=5.0))
    replay(ctl, 20.0, 10)
    assert ctl.scale == 1.0
    # a heavier model (the hq one) for a while ...
    for k in range(int(10 * FPS)):
        ctl.observe(90.0 * ctl.scale**2, 10 + k / FPS)
    low = ctl.scale
    assert low <= 0.6
    # ... and back: steps up only after the ramp-up wait of low usage
    ups = []
    for k in range(int(40 * FPS)):
        now = 20 + k / FPS
        d = ctl.observe(8.0 * ctl.scale**2, now)
        if d is not None:
            ups.append(now)
    assert ctl.scale == 1.0
    assert ups and ups[0] - 20 >= 5.0


def test_small_jitter_changes_nothing():
    ctl = ScaleController(AdaptSettings(BUDGET))
    rng = np.random.default_rng(3)
    for k in range(600):
        ctl.observe(float(18 + rng.normal(0, 2)), k / FPS)
    assert ctl.changes == 0


@pytest.mark.gpu
async def test_the_model_runs_on_a_scaled_input_and_the_output_size_holds():
    model = infer.load(nearest_upscaler())
    frame = yuv_frame(320, 180)
    pipe = FramePipeline(model, keep_tensors=True)
    try:
        full = await pipe.process(frame)
        pipe.input_scale = 0.5
        half = await pipe.process(frame)
        assert (half.width, half.height) == (full.width, full.height) == (640, 360)
        assert pipe.last_tensors["rgb_in"].shape == (1, 3, 90, 160)  # the model ran at half
        # smooth content: the half-resolution output is close to the full one
        a, b = (planes_of(f)[0].astype(float) for f in (full, half))
        psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
        assert psnr > 30, psnr
        pipe.input_scale = 0.25
        quarter = await pipe.process(frame)
        assert (quarter.width, quarter.height) == (640, 360)
        assert pipe.last_tensors["rgb_in"].shape == (1, 3, 45, 80)
    finally:
        pipe.close()


@pytest.mark.gpu
async def test_frames_that_compiled_a_plan_or_ran_at_the_old_scale_are_not_judged():
    """Changing the scale compiles the model for the new size (about a second on lavapipe)
    while frames of the old scale are still in flight: counted, they made a 160x90 source fall
    back at once after every change."""
    model = infer.load(nearest_upscaler())
    frame = yuv_frame()
    pipe = FramePipeline(model, slots=2)
    adapt = Adaptation(AdaptConfig(), fps=30.0)
    try:

        async def feed(n):
            for _ in range(n):
                yield frame

        pipe.input_scale = 1.0
        async for _ in pipe.frames(feed(3)):
            pass
        adapt.controller.scale = pipe.input_scale = 0.5
        async for _ in pipe.frames(feed(3)):
            pass
    finally:
        pipe.close()
    # every frame's timing, in order (one readback thread records them): the newest timing
    # when a frame is yielded may already be the next frame's
    seen = pipe.stats.timings()
    assert [t.new_plan for t in seen] == [True, False, False, True, False, False]
    assert [t.scale for t in seen] == [1.0] * 3 + [0.5] * 3
    for t in seen:
        adapt.observe(t, pipe, "model", 0.0)
    assert len(adapt.controller._times) == 2  # only the two settled frames at 0.5


@pytest.mark.gpu
async def test_a_new_scale_takes_effect_once_compiled_and_frames_keep_the_old_one_meanwhile():
    frame = yuv_frame()
    with model_and_fallback() as (pipe, planar, adapt, gate):
        await pipe.process(frame)
        pipe._compile_thread.submit(gate.wait, 30)  # the compile waits behind this
        slow = FrameTiming(index=1, pts=None, gpu_ms=500.0, scale=1.0)
        for k in range(3):  # two frames far over budget: a panic, down to a smaller scale
            adapt.observe(slow, pipe, "model", k / 30)
        assert adapt.controller.scale < 1.0
        out = await pipe.process(frame)  # still the old scale: nothing stalls on the compile
        assert pipe.input_scale == 1.0 and pipe.stats.recent[-1].scale == 1.0
        gate.set()
        await until(lambda: adapt.running_mode("model") == "model" and pipe.input_scale < 1.0)
        assert pipe.input_scale == adapt.controller.scale
        out = await pipe.process(frame)
        assert pipe.stats.recent[-1].scale == adapt.controller.scale
        assert not pipe.stats.recent[-1].new_plan or pipe.plans_made == 2
        assert (out.width, out.height) == (320, 180)
        # from the fallback, the model is retried only once it is compiled for the floor
        adapt.controller.fallback, adapt.controller.scale = True, adapt.cfg.floor
        assert adapt.running_mode("model") == "planar"
        pipe._compile_thread.submit(gate.clear)
        blocker = Event()
        pipe._compile_thread.submit(blocker.wait, 30)
        fast = FrameTiming(index=2, pts=None, gpu_ms=1.0, scale=1.0)
        for k in range(400):  # room for the ramp-up wait: the controller retries the model
            adapt.observe(fast, planar, "model", 100 + k / 30, model_pipe=pipe)
            if not adapt.controller.fallback:
                break
        assert not adapt.controller.fallback
        assert adapt.running_mode("model") == "planar"  # compiling: the fallback runs on
        blocker.set()
        await until(lambda: adapt.running_mode("model") == "model")
        assert adapt.running_mode("model") == "model" and pipe.input_scale == adapt.cfg.floor


@pytest.mark.gpu
@pytest.mark.parametrize(("gpu_ms", "meanwhile"), [(50.0, "model"), (200.0, "planar")])
async def test_far_over_budget_the_fallback_runs_while_the_smaller_scale_compiles(
    gpu_ms, meanwhile
):
    """A little over budget, the model keeps its old scale until the new one is compiled; far
    over (6x here), the fallback runs meanwhile, its frames not judged as the model's."""
    frame = yuv_frame()
    with model_and_fallback() as (pipe, planar, adapt, gate):
        await pipe.process(frame)
        pipe._compile_thread.submit(gate.wait, 30)  # the compile waits behind this
        slow = FrameTiming(index=1, pts=None, gpu_ms=gpu_ms, scale=1.0)
        for k in range(3):
            adapt.observe(slow, pipe, "model", k / 30)
        assert adapt.controller.scale < 1.0 and not adapt.controller.fallback
        assert adapt.running_mode("model") == meanwhile
        fast = FrameTiming(index=2, pts=None, gpu_ms=1.0, scale=1.0)
        running = planar if meanwhile == "planar" else pipe  # the model at its old scale
        for k in range(400):  # frames while it compiles: no step back up on them
            adapt.observe(fast, running, "model", 1 + k / 30, model_pipe=pipe)
        assert adapt.controller.scale < 1.0
        gate.set()
        await until(lambda: adapt.running_mode("model") == "model" and pipe.input_scale < 1.0)
        assert pipe.input_scale == adapt.controller.scale < 1.0


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", ["yuv420p", "nv12"])
async def test_the_planar_scaler_matches_swscale_bilinear_without_an_rgb_pass(fmt):
    from av.video.reformatter import Interpolation

    rgb = smooth_rgb(322, 182, 0.6)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt)
    pipe = FramePipeline(mode="planar")
    try:
        out = await pipe.process(frame)
    finally:
        pipe.close()
    assert (out.width, out.height) == (644, 364)
    ref = frame.reformat(width=644, height=364, format="yuv420p",
                         interpolation=Interpolation.BILINEAR)  # fmt: skip
    for got, want in zip(planes_of(out), planes_of(ref), strict=True):
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 1.0


@pytest.mark.gpu
async def test_only_the_first_size_of_a_pipeline_times_kernels(monkeypatch, tmp_path):
    """Timing candidates holds the device's queue: a size compiled while frames run (a new
    scale, a source changing size) takes the nearest size class measured instead, and a new
    scale compiled in the background is first run on a side device (lavapipe)."""
    from infer import kernel_choice

    monkeypatch.setenv("FRAMESMITH_KERNEL_CACHE", str(tmp_path))
    monkeypatch.delenv("MESA_SHADER_CACHE_DISABLE", raising=False)
    monkeypatch.setattr(kernel_choice, "MIN_FLOPS", 0)
    monkeypatch.setattr(kernel_choice, "BUDGET_S", 0)  # the rule alone is timed: quick
    pipe = FramePipeline(infer.load(nearest_upscaler(), kernels="measure"), slots=2)

    def how(width: int, height: int) -> set[str]:
        exe = pipe.executable_for(width, height, measure=False)
        return {c.how for c in exe.program.kernel_choices.values()}

    try:
        await pipe.process(yuv_frame(160, 90))
        assert how(160, 90) == {"measured"}
        assert not pipe.model._warmed
        pipe.prepare_scale(0.25).result(timeout=120)  # 40x22: another size class
        assert how(40, 22) == {"nearest"}
        # lavapipe: its first run was on the side device, when it compiled anything new (sizes
        # are uniforms: kernels another test compiled at any size are not compiled again)
        fresh = pipe.executable_for(40, 22, measure=False).new_pipelines > 0
        warms = pipe.model.device.compiles_at_first_dispatch and fresh
        assert len(pipe.model._warmed) == int(warms)
        await pipe.process(yuv_frame(48, 28))  # the source changed size mid-stream
        assert how(48, 28) == {"nearest"}
    finally:
        pipe.close()

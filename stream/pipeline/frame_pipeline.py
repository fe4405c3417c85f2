"""The GPU frame pipeline: planes in, colour pass, CNN, colour pass, planes out.

One command buffer per frame. Frames are uploaded into per-slot textures and read back
through per-slot mapped buffers, so while the GPU computes frame N, frame N+1 is uploaded
and frame N-1 is read back. Uploads and submits run on one worker thread, map waits on
another: the asyncio loop never waits on the GPU. A live source hands over its newest frame
only when the GPU has finished the previous one, so a GPU-bound stream does not queue a
stale frame behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import av
import numpy as np

import infer

from ..sources.frames import fill_plane
from .baseline import baseline_model
from .colour import Colour, colour_of
from .inbox import BoundedQueue, Inbox, LatestBox
from .plan import PipelineError, Plan, debug_tensors, scaled_size
from .stats import FrameTiming, PipelineStats

log = logging.getLogger(__name__)

# (stage, done, total) of a model being prepared: infer.Model.prepare's `progress`
Progress = Callable[[str, int, int], None]

MODES = ("model", "bypass", "bilinear", "bicubic", "planar", "edge")
# modes that run no model: the colour passes alone, or a scaler of the pipeline's own
_MODELLESS = ("bypass", "planar", "edge", "bilinear")


class FramePipeline:
    """Runs a model (or a baseline) on video frames on the GPU.

    `await process(frame)` handles one frame; `frames(source, live=...)` pipelines a whole
    async source. Output frames are yuv420p at the model's output size, with the input's
    pts, time base and colour. Chroma siting is horizontal "center" by default (what swscale
    produces and assumes for yuv420p, so PyAV-made frames round-trip and match its RGB) or
    "left" (the H.264/HEVC default for camera sources); vertical siting is always centred.
    """

    def __init__(
        self,
        model: infer.Model | None = None,
        *,
        mode: str = "model",
        scale: int = 2,
        slots: int = 2,
        keep_tensors: bool = False,
        adapter: int | None = None,
        chroma_siting: str = "center",
        max_plans: int = 4,
    ) -> None:
        if mode not in MODES:
            raise PipelineError(f"mode must be one of {MODES}, not {mode!r}")
        if mode == "model" and model is None:
            raise PipelineError("mode 'model' needs a model (or use mode 'bypass')")
        if chroma_siting not in ("center", "left"):
            raise PipelineError(f"chroma_siting must be 'center' or 'left', not {chroma_siting!r}")
        if slots < 1:
            raise PipelineError("slots must be >= 1")
        self.mode = mode
        self.scale = scale
        self.slots = slots
        self.keep_tensors = keep_tensors
        self.chroma_siting = chroma_siting
        self.model = (
            model
            if mode == "model"
            else (None if mode in _MODELLESS else baseline_model(mode, scale, adapter))
        )
        self.device = self.model.device if self.model is not None else infer.get_device(adapter)
        self.stats = PipelineStats()
        self.last_tensors: dict[str, np.ndarray] = {}
        # one Plan per frame size (and format, colour), least recently used freed: a publisher
        # changing its size every frame must not grow GPU memory. More plans than slots, so
        # the plan freed is never one a frame in flight still uses.
        self.max_plans = max(max_plans, slots + 1)
        self._plans: OrderedDict[tuple[int, int, str, Colour, float], Plan] = OrderedDict()
        # the model's input scale (dynamic resolution, adapt.py): frames submitted from now
        # on run the model on the frame scaled by this, the output size unchanged
        self.input_scale = 1.0
        self.plans_made = 0
        self.last_size: tuple[int, int] | None = None  # of the frames it was last given
        self._submit_thread = ThreadPoolExecutor(1, thread_name_prefix="fs-submit")
        self._compile_thread = ThreadPoolExecutor(1, thread_name_prefix="fs-compile")
        self._readback_thread = ThreadPoolExecutor(1, thread_name_prefix="fs-readback")
        self._next_slot = 0
        self._index = 0

    # -- GPU side (worker threads) ----------------------------------------------------------

    def executable_for(
        self,
        width: int,
        height: int,
        measure: bool = True,
        warm: bool = False,
        progress: Progress | None = None,
    ) -> infer.Executable | None:
        """The model compiled for frames of this size. `measure`: its convs' kernels may be
        timed on the device (once per device and size class, infer.kernel_choice); only for
        a pipeline's first size, before any frame of its own runs: timing later would stall
        the running frames for seconds (a new scale, a source changing size). `warm`: for a
        size compiled in the background (infer.Model.prepare: on lavapipe the kernels are
        made at their first run, which would hold up the frames for 7-20 s). `progress`: told
        how far it is (infer.model.Progress)."""
        if self.model is None:
            return None
        shape: tuple[int, ...] = (1, 3, height, width)
        return self.model.prepare(
            {self.model.inputs[0]: shape}, measure=measure, warm=warm, progress=progress
        )

    def prepare_scale(
        self, scale: float, measure: bool = False, progress: Progress | None = None
    ) -> Future[Any] | None:
        """Compile the model for the last frame size at this input scale, in the background
        (its kernels are specialised to the shape: on lavapipe 7-20 s a size, most of it at
        the kernels' first run, which is why they are warmed on a side device); None when
        there is nothing to compile. Frames keep running meanwhile. `measure`: convs not yet
        timed are timed (on the side device; a model switched to mid-stream)."""
        if self.model is None or self.mode != "model" or self.last_size is None:
            return None
        w, h = scaled_size(*self.last_size, scale)
        return self._compile_thread.submit(self.executable_for, w, h, measure, True, progress)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The size of output frames for inputs of this size (before any frame is seen)."""
        exe = self.executable_for(width, height)
        if exe is None:
            scaled = self.mode in ("planar", "edge", "bilinear")
            return (width * self.scale, height * self.scale) if scaled else (width, height)
        shape = exe.shape(exe.outputs[0])
        return shape[3], shape[2]

    def _plan(self, frame: av.VideoFrame) -> tuple[Plan, av.VideoFrame]:
        fmt = frame.format.name
        if fmt not in ("yuv420p", "nv12"):
            frame = frame.reformat(format="yuv420p")
            fmt = "yuv420p"
        colour = colour_of(frame)
        scale = self.input_scale
        self.last_size = (frame.width, frame.height)
        key = (frame.width, frame.height, fmt, colour, scale)
        plan = self._plans.get(key)
        if plan is None:
            plan = Plan(self, frame.width, frame.height, fmt, colour, scale)
            self.plans_made += 1
            self._plans[key] = plan
            while len(self._plans) > self.max_plans:
                _, old = self._plans.popitem(last=False)
                old.release()
        else:
            self._plans.move_to_end(key)
        return plan, frame

    @property
    def plans(self) -> int:
        return len(self._plans)

    def _upload_and_submit(self, frame: av.VideoFrame, slot: int, timing: FrameTiming) -> Plan:
        t0 = time.perf_counter()
        made = self.plans_made
        plan, frame = self._plan(frame)
        timing.scale, timing.new_plan = plan.scale, self.plans_made != made
        q = self.device.queue
        s = plan.slots[slot]
        for tex, plane in zip(s.textures, frame.planes, strict=True):
            w, h = tex.size[0], tex.size[1]
            q.write_texture(
                {"texture": tex},
                memoryview(plane),
                {"bytes_per_row": plane.line_size, "rows_per_image": h},
                (w, h, 1),
            )
        t1 = time.perf_counter()
        d = self.device.device
        enc = d.create_command_encoder()
        ts = None
        if plan.timestamps:
            ts = {
                "query_set": plan.queries,
                "beginning_of_pass_write_index": 2 * slot,
                "end_of_pass_write_index": 2 * slot + 1,
            }
        cp = enc.begin_compute_pass(timestamp_writes=ts)
        plan.encode(cp, s)
        cp.end()
        enc.copy_buffer_to_buffer(plan.planes, 0, s.readback, 0, plan.planes_bytes)
        if plan.timestamps:
            enc.resolve_query_set(plan.queries, 2 * slot, 2, plan.resolve, 256 * slot)
            enc.copy_buffer_to_buffer(plan.resolve, 256 * slot, s.readback, plan.planes_bytes, 16)
        if plan.debug:
            off = plan.planes_bytes + 256
            enc.copy_buffer_to_buffer(plan.rgb_in, 0, s.readback, off, plan.rgb_in_bytes)
            enc.copy_buffer_to_buffer(
                plan.rgb_out, 0, s.readback, off + plan.rgb_in_bytes, plan.rgb_out_bytes
            )
        q.submit([enc.finish()])
        self.stats.submits += 1
        t2 = time.perf_counter()
        timing.dispatches = plan.dispatches
        timing.upload_ms = (t1 - t0) * 1000
        timing.submit_ms = (t2 - t1) * 1000
        timing.t_submitted = t2
        return plan

    def _readback(
        self,
        plan: Plan,
        slot: int,
        src: av.VideoFrame,
        timing: FrameTiming,
        gpu_done: Callable[[], None] | None = None,
    ) -> av.VideoFrame:
        t0 = time.perf_counter()
        rb = plan.slots[slot].readback
        # Plain READ makes wgpu-py submit an empty command buffer first (its workaround for
        # wgpu-native#305, CPU writes through a mapping). Our buffer is only written by the
        # copy in this frame's own submission, so that sync is not needed, and it hurts:
        # on a queue that runs one submission at a time (lavapipe) the empty submit waits
        # behind the *next* frame, holding the queue lock the next upload needs.
        rb.map_sync("READ_NOSYNC")
        if gpu_done is not None:
            gpu_done()
        try:
            data = np.frombuffer(rb.read_mapped(copy=True), np.uint8)
        finally:
            rb.unmap()
        out = av.VideoFrame(plan.out_w, plan.out_h, "yuv420p")
        for k, plane in enumerate(out.planes):
            fill_plane(plane, data[plan.plane_offsets[k] : plan.plane_offsets[k + 1]])
        out.pts = src.pts
        if src.time_base is not None:
            out.time_base = src.time_base
        plan.colour.apply_to(out)
        if plan.timestamps:
            t_begin, t_end = np.frombuffer(
                data[plan.planes_bytes : plan.planes_bytes + 16].tobytes(), np.uint64
            )
            timing.gpu_ms = max(0.0, float(np.int64(t_end - t_begin)) / 1e6)
        if plan.debug:
            self.last_tensors = debug_tensors(plan, data)
        t1 = time.perf_counter()
        timing.readback_ms = (t1 - t0) * 1000
        timing.t_done = t1
        timing.total_ms = (t1 - timing.t_start) * 1000
        self.stats.record(timing)
        return out

    # -- asyncio side -----------------------------------------------------------------------

    def _timing(self, frame: av.VideoFrame) -> FrameTiming:
        self._index += 1
        self.stats.frames_in += 1
        return FrameTiming(self._index - 1, frame.pts, t_start=time.perf_counter())

    async def process(self, frame: av.VideoFrame) -> av.VideoFrame:
        """One frame, start to finish (no overlap with other frames)."""
        loop = asyncio.get_running_loop()
        timing = self._timing(frame)
        plan = await loop.run_in_executor(
            self._submit_thread, self._upload_and_submit, frame, 0, timing
        )
        return await loop.run_in_executor(
            self._readback_thread, self._readback, plan, 0, frame, timing
        )

    async def frames(
        self, source: AsyncIterable[av.VideoFrame], *, live: bool = False
    ) -> AsyncGenerator[av.VideoFrame, None]:
        """Pipelined processing of a source, in order.

        Offline (live=False) nothing is dropped: the source is read only as fast as slots
        free up. Live: when every slot is busy and a newer frame arrives, the older waiting
        frame is dropped (newest wins) and counted in stats.dropped.
        """
        loop = asyncio.get_running_loop()
        inbox: Inbox = (
            LatestBox(self._timing, self.stats) if live else BoundedQueue(self._timing, self.slots)
        )
        inflight: asyncio.Queue = asyncio.Queue()
        free = asyncio.Semaphore(self.slots)
        gpu_idle = asyncio.Event()
        gpu_idle.set()

        def gpu_done() -> None:
            loop.call_soon_threadsafe(gpu_idle.set)

        async def feed() -> None:
            try:
                async for frame in source:
                    await inbox.put(frame)
            finally:
                await inbox.put(None)

        async def dispatch() -> None:
            try:
                while True:
                    if live:
                        # Newest wins as late as possible: the next frame is taken only once
                        # the GPU has finished the previous one. A GPU-bound live stream then
                        # carries no stale frame through the second slot (a frame time of
                        # latency each), while readback and encode of frame N still overlap
                        # the GPU work of N+1.
                        await gpu_idle.wait()
                    if (item := await inbox.get()) is None:
                        break
                    frame, timing = item
                    t_wait = time.perf_counter()
                    await free.acquire()
                    timing.wait_ms = (time.perf_counter() - t_wait) * 1000
                    gpu_idle.clear()
                    slot = self._next_slot
                    self._next_slot = (slot + 1) % self.slots
                    plan = await loop.run_in_executor(
                        self._submit_thread, self._upload_and_submit, frame, slot, timing
                    )
                    fut = loop.run_in_executor(
                        self._readback_thread, self._readback, plan, slot, frame, timing, gpu_done
                    )
                    await inflight.put(fut)
            except BaseException as e:
                await inflight.put(e)
                raise
            await inflight.put(None)

        tasks = [asyncio.ensure_future(feed()), asyncio.ensure_future(dispatch())]
        try:
            while (fut := await inflight.get()) is not None:
                if isinstance(fut, BaseException):
                    raise fut
                try:
                    out = await fut
                finally:
                    free.release()
                yield out
            for t in tasks:
                if t.done() and (exc := t.exception()) is not None:
                    raise exc
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        self._compile_thread.shutdown(wait=True, cancel_futures=True)
        self._submit_thread.shutdown(wait=True)
        self._readback_thread.shutdown(wait=True)

"""A model made ready for the main stream while a cheap mode serves: no black page.

Run straight away, a model's first frame waits for everything done once per machine and size:
each conv's kernels timed (infer.kernel_choice), the model compiled, and on lavapipe its
machine code made at the first run. The default `serve` on a machine it had never run on
showed its first frame 57.9 s after /healthz answered. So the main stream starts on a cheap
mode, `edge` (FSR 1) where it fits the frame budget, else `planar`, while the model is
prepared on the compile thread (`FramePipeline.prepare_scale`: timed and warmed on the
side device, infer.Model.prepare) for the size of the first frames, and takes the model up
once it is ready. A model an admin switches to mid-stream goes the same way, the mode before
it serving meanwhile.

Who sees what: viewers, the model's name, what is being done and how far ("choosing kernels
3/7"), in the hello and in a "preparing" message on the control channel at each step (server
-> page, every role: nothing in it that /healthz does not say); admins, the same with the
error of a failed preparation in /api/stats; /healthz, the phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from .pipeline import FramePipeline, FrameTiming

log = logging.getLogger(__name__)

CHEAP = "edge"  # serves while a model is prepared, where it fits the frame budget ...
CHEAPEST = "planar"  # ... else this (no RGB at all)
FITS = 0.85  # of the frame interval: the adaptation's overuse line (stream/pipeline/adapt.py)
TIMED = 5  # cheap frames timed before deciding whether it fits ...
FAR_OVER = 2.0  # ... or two in a row over this many frame intervals (edge at 720p on lavapipe
# took 0.6-1 s a frame beside the kernel timing: five of them were 5 s at 1 fps)
PHASES = {  # infer.Model.prepare's stages, as the page shows them
    "frame": "waiting for the first frame",
    "kernels": "choosing kernels",
    "compiling": "compiling",
    "warming": "first run (machine code)",
    "ready": "ready",
    "failed": "failed",
}


class Preparing:
    """One model being made ready while `serving` runs the main stream."""

    def __init__(
        self, mode: str, name: str, pipe: FramePipeline, serving: str, measure: bool
    ) -> None:
        self.mode, self.name, self.pipe = mode, name, pipe
        self.serving = serving
        self.measure = measure  # its kernels may be timed (a pipeline's first size)
        self.future: Future[Any] | None = None
        self.stage, self.done, self.total = "frame", 0, 0
        self.started = time.monotonic()
        self.ended: float | None = None
        self.error: str | None = None  # why it failed (for admins)
        self.times: list[float] = []  # the cheap mode's per-frame ms, until it is decided
        self.told: tuple[Any, ...] = ()  # what the viewers were told last

    @property
    def ready(self) -> bool:
        return self.stage == "ready"

    @property
    def failed(self) -> bool:
        return self.stage == "failed"

    def public(self) -> dict[str, Any]:
        end = self.ended if self.ended is not None else time.monotonic()
        return {
            "model": self.name,
            "phase": PHASES[self.stage],
            "done": self.done,
            "total": self.total,
            "serving": self.serving,
            "elapsed_s": round(end - self.started, 1),
        }


class ModelSwitch:
    """The main stream's way onto a model (Service.running_mode asks `serving()`).

    `viewers()` are the sessions told each step (on the event loop, whichever thread the
    preparation reports from)."""

    def __init__(
        self,
        pipes: Callable[[str], FramePipeline | None],
        viewers: Callable[[], Iterable[Any]],
        budget_ms: float,
    ) -> None:
        self._pipes = pipes
        self._viewers = viewers
        self.budget_ms = budget_ms
        self.current: Preparing | None = None  # being prepared (or failed)
        self.last: Preparing | None = None  # the last one, ready or not: for the figures
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin(self, mode: str, name: str, pipe: FramePipeline, serving: str) -> None:
        """Prepare `pipe`'s model (mode `mode`) while `serving` runs; on the event loop."""
        self._loop = asyncio.get_running_loop()
        self.current = self.last = Preparing(mode, name, pipe, serving, pipe.plans_made == 0)
        log.info("preparing %s (%s) while %s serves", mode, name or "model", serving)
        self._start(self.current)

    def cancel(self) -> None:
        """Another mode was chosen: nothing runs in its place any more (a compile under way
        finishes on its thread; its result stays in the model's cache)."""
        if self.last is self.current:
            self.last = None  # /api/stats shows no preparation that is not going on
        self.current = None

    def serving(self) -> str | None:
        """The mode that runs in place of the chosen one while its model is prepared (None:
        the chosen one runs)."""
        p = self.current
        if p is None:
            return None
        if p.future is None:
            self._start(p)
        elif p.future.done() and not (p.ready or p.failed):
            self._finished(p)
        if p.ready:
            self.current = None
            return None
        return p.serving

    def observe(self, timing: FrameTiming, pipe: FramePipeline) -> bool:
        """A main-stream frame (`pipe` ran it): True while a model is being prepared (the
        frames are the cheap mode's, not the chosen one's). Edge gives way to planar when it
        does not fit the frame budget."""
        p = self.current
        if p is None:
            return False
        if p.serving == CHEAP == pipe.mode and not timing.new_plan and len(p.times) < TIMED:
            gpu = timing.gpu_ms
            p.times.append(gpu if gpu is not None else (timing.t_done - timing.t_submitted) * 1000)
            ms = statistics.median(p.times)
            far = len(p.times) >= 2 and min(p.times[-2:]) > FAR_OVER * self.budget_ms
            if far or (len(p.times) == TIMED and ms > FITS * self.budget_ms):
                log.info("%s takes %.1f ms a frame against a %.1f ms budget: %s serves while "
                         "%s is prepared", CHEAP, ms, self.budget_ms, CHEAPEST, p.mode)  # fmt: skip
                p.serving = CHEAPEST
                self._tell(p)
        return True

    def _start(self, p: Preparing) -> None:
        """Compile for the frames' size once one is known: the model's pipeline's own, else
        the serving one's first frame."""
        if p.pipe.last_size is None:
            served = self._pipes(p.serving)
            if served is None or served.last_size is None:
                return
            p.pipe.last_size = served.last_size
        p.future = p.pipe.prepare_scale(p.pipe.input_scale, p.measure, self._progress(p))
        if p.future is None:  # nothing to compile
            p.stage, p.ended = "ready", time.monotonic()
        self._tell(p)

    def _progress(self, p: Preparing) -> Callable[[str, int, int], None]:
        def progress(stage: str, done: int, total: int) -> None:  # on the compile thread
            if stage == "ready":
                return  # said on the loop, when the future is seen done
            p.stage, p.done, p.total = stage, done, total
            if self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed (shutting down)
                    self._loop.call_soon_threadsafe(self._tell, p)

        return progress

    def _finished(self, p: Preparing) -> None:
        assert p.future is not None
        p.ended = time.monotonic()
        if (e := p.future.exception()) is not None:
            p.stage, p.error = "failed", f"{type(e).__name__}: {e}"
            log.warning("preparing %s failed (%s): %s keeps serving", p.mode, p.error, p.serving)
        else:
            p.stage, p.done, p.total = "ready", 1, 1
            log.info("%s ready after %.1f s: it serves now", p.mode, p.ended - p.started)
        self._tell(p)

    def _tell(self, p: Preparing) -> None:
        told = (p.stage, p.done, p.total, p.serving)
        if (p is self.current or p.ready) and told != p.told:
            p.told = told
            message = {"type": "preparing", **p.public()}
            for session in self._viewers():
                session.control.send(message)

    # -- figures -----------------------------------------------------------------------------

    def public(self) -> dict[str, Any] | None:
        """For viewers (the hello): what is being prepared and how far; None when nothing is."""
        return self.current.public() if self.current is not None else None

    def phase(self) -> str | None:
        """For /healthz: the phase of a preparation under way (None: the chosen mode runs)."""
        return PHASES[self.current.stage] if self.current is not None else None

    def state(self) -> dict[str, Any] | None:
        """For admins: the last preparation, under way or done, and why one failed."""
        p = self.last
        if p is None:
            return None
        return {**p.public(), "mode": p.mode, "error": p.error}

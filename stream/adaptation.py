"""The service's side of dynamic resolution: feeds each main-stream frame's GPU time to the
controller (stream/pipeline/adapt.py) and applies what it decides: the model pipeline's input
scale, or the fallback scaler while even the floor scale is too slow. One log line per
change; the state is in /api/stats ("adapt") and in every frame's message to the viewer."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any

from .config import AdaptConfig
from .pipeline import FramePipeline, FrameTiming
from .pipeline.adapt import AdaptSettings, Decision, ScaleController

log = logging.getLogger(__name__)

FAR_OVER = 2.0  # times the frame budget: a step down waits on the fallback, not the model


class Adaptation:
    """A new scale is compiled in the background first (pipe.prepare_scale, which on lavapipe
    also runs it once on a side device): until it is ready the frames keep running at the old
    scale, or the fallback runs when the model is being retried or the old scale is more than
    FAR_OVER times over budget. So a change costs no stall (on lavapipe a new size took 7-20 s
    to compile, during which a 160x90 viewer got no frame)."""

    def __init__(self, cfg: AdaptConfig, fps: float) -> None:
        self.cfg = cfg
        self.controller = ScaleController(
            AdaptSettings(
                budget_ms=1000.0 / fps,
                floor=cfg.floor,
                headroom=cfg.headroom,
                ramp_up_s=cfg.ramp_up_s,
            )
        )
        self.last: Decision | None = None
        # a scale being compiled: (its future, the scale, the pipeline, back from fallback)
        self._pending: tuple[Future[Any], float, FramePipeline, bool] | None = None

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    @property
    def fallback(self) -> bool:
        return self.enabled and self.controller.fallback

    @property
    def scale(self) -> float:
        return self.controller.scale if self.enabled else 1.0

    def running_mode(self, chosen: str) -> str:
        """The mode that runs: the chosen one, or the fallback scaler in place of a model (also
        while the model it returns to is being compiled)."""
        self._adopt()
        leaving = self._pending is not None and self._pending[3]
        fallback = self.fallback or leaving
        return self.cfg.fallback if fallback and chosen.startswith("model") else chosen

    def _adopt(self) -> None:
        """A scale whose compile has finished takes effect for the next frames."""
        if self._pending is None or not self._pending[0].done():
            return
        future, scale, pipe, _ = self._pending
        self._pending = None
        if (e := future.exception()) is not None:
            log.warning("adapt: compiling the model at %.0f%% failed (%s); keeping the scale",
                        scale * 100, e)  # fmt: skip
            return
        pipe.input_scale = scale

    def observe(
        self,
        timing: FrameTiming,
        pipe: FramePipeline,
        chosen: str,
        now: float,
        model_pipe: FramePipeline | None = None,
    ) -> bool:
        """One frame of the main stream (`pipe` ran it; `model_pipe` is the chosen model's,
        when the fallback ran it); True when the running mode changes."""
        if not self.enabled or not chosen.startswith("model"):
            return False
        was_mode = self.running_mode(chosen)
        if timing.new_plan or (
            pipe.mode == "model" and abs(timing.scale - self.controller.scale) > 1e-6
        ):
            # compiling a new size, or a frame of the scale before the last change (still in
            # flight when it changed): neither says what the GPU takes at this scale; counted,
            # they made a 160x90 source fall back at once on every change
            return False
        if self._pending is not None and self._pending[3] and pipe.mode != "model":
            return False  # the fallback's frames while the model compiles: not the model's
        ms = (
            timing.gpu_ms
            if timing.gpu_ms is not None
            else (timing.t_done - timing.t_submitted) * 1000
        )
        decision = self.controller.observe(ms, now)
        if decision is None:
            return False
        self.last = decision
        log.info(
            "adapt: %s (%s; GPU %.1f ms a frame against a %.1f ms budget)",
            f"falling back to {self.cfg.fallback}" if decision.fallback
            else f"model input at {decision.scale:.0%}",
            decision.reason,
            ms,
            self.controller.settings.budget_ms,
        )  # fmt: skip
        if decision.fallback:
            self._pending = None  # a scale still compiling is moot
        else:
            target = pipe if pipe.mode == "model" else model_pipe
            # far over budget (a 320x180 source: 226 ms a frame against 33), the fallback runs
            # until the smaller scale is compiled: the viewers get the full rate, and the
            # compile the CPU the frames took (on lavapipe it took over 25 s beside them)
            far_over = ms > FAR_OVER * self.controller.settings.budget_ms
            if target is not None:
                leaving = pipe.mode != "model" or (far_over and decision.scale < pipe.input_scale)
                self._prepare(target, decision.scale, leaving=leaving, size=pipe)
        return self.running_mode(chosen) != was_mode

    def _prepare(
        self, target: FramePipeline, scale: float, leaving: bool, size: FramePipeline
    ) -> None:
        target.last_size = target.last_size or size.last_size
        future = target.prepare_scale(scale)
        if future is None:  # nothing to compile (no frame seen yet)
            target.input_scale = scale
            self._pending = None
            return
        self._pending = (future, scale, target, leaving)
        self._adopt()

    def apply_scale(self, pipe: FramePipeline) -> None:
        """A model pipeline (re)entered: run it at the controller's scale."""
        if pipe.mode == "model":
            pipe.input_scale = self.scale

    def state(self, chosen: str) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "running_mode": self.running_mode(chosen),
            **self.controller.state(),
        }

"""The service's side of dynamic resolution: feeds each main-stream frame's GPU time to the
controller (stream/pipeline/adapt.py) and applies what it decides: the model pipeline's input
scale, or the fallback scaler while even the floor scale is too slow. One log line per
change; the state is in /api/stats ("adapt") and in every frame's message to the viewer."""

from __future__ import annotations

import logging
from typing import Any

from .config import AdaptConfig
from .pipeline import FramePipeline, FrameTiming
from .pipeline.adapt import AdaptSettings, Decision, ScaleController

log = logging.getLogger(__name__)


class Adaptation:
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
        """The mode that runs: the chosen one, or the fallback scaler in place of a model."""
        return self.cfg.fallback if self.fallback and chosen.startswith("model") else chosen

    def observe(self, timing: FrameTiming, pipe: FramePipeline, chosen: str, now: float) -> bool:
        """One frame of the main stream; True when the running mode changes."""
        if not self.enabled or not chosen.startswith("model"):
            return False
        if timing.new_plan or (
            pipe.mode == "model" and abs(timing.scale - self.controller.scale) > 1e-6
        ):
            # compiling a new size, or a frame of the scale before the last change (still in
            # flight when it changed): neither says what the GPU takes at this scale; counted,
            # they made a 160x90 source fall back at once on every change
            return False
        ms = (
            timing.gpu_ms
            if timing.gpu_ms is not None
            else (timing.t_done - timing.t_submitted) * 1000
        )
        decision = self.controller.observe(ms, now)
        if decision is None:
            return False
        self.last = decision
        was = pipe.mode
        log.info(
            "adapt: %s (%s; GPU %.1f ms a frame against a %.1f ms budget)",
            f"falling back to {self.cfg.fallback}" if decision.fallback
            else f"model input at {decision.scale:.0%}",
            decision.reason,
            ms,
            self.controller.settings.budget_ms,
        )  # fmt: skip
        if not decision.fallback and pipe.mode == "model":
            pipe.input_scale = decision.scale
        return decision.fallback != (was != "model")

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

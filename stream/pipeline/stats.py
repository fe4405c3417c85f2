"""Per-frame stage timings and counters of the GPU frame pipeline."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

STAGES = ("wait_ms", "upload_ms", "submit_ms", "gpu_ms", "readback_ms", "total_ms")


@dataclass
class FrameTiming:
    index: int
    pts: int | None
    wait_ms: float = 0.0  # waiting for a free slot
    upload_ms: float = 0.0  # planes to textures (queue.write_texture)
    submit_ms: float = 0.0  # encoding and submitting the command buffer
    gpu_ms: float | None = None  # first to last pass, from timestamp queries
    readback_ms: float = 0.0  # waiting for the mapped result and building the frame
    total_ms: float = 0.0  # arrival to output frame
    t_start: float = 0.0  # perf_counter at arrival, for timelines
    t_submitted: float = 0.0
    t_done: float = 0.0
    scale: float = 1.0  # the model input scale its plan ran at
    new_plan: bool = False  # its plan was made for it: its times include compiling
    dispatches: int = 0  # compute dispatches recorded for it (one command buffer, one submit)


@dataclass
class PipelineStats:
    """Counters and a window of recent frame timings; safe to read from any thread."""

    window: int = 1000
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    submits: int = 0  # queue submissions of the pipeline's frames (one each)
    recent: deque[FrameTiming] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, timing: FrameTiming) -> None:
        with self._lock:
            self.frames_out += 1
            self.recent.append(timing)
            while len(self.recent) > self.window:
                self.recent.popleft()

    def timings(self, last: int | None = None) -> list[FrameTiming]:
        """The window's timings (the `last` n only, when given), oldest first."""
        with self._lock:
            rows = list(self.recent)
        return rows if last is None else rows[-last:]

    def timing_of(self, pts: int | None) -> FrameTiming | None:
        """The newest frame's timing, when it is the frame with this pts."""
        with self._lock:
            if self.recent and self.recent[-1].pts == pts:
                return self.recent[-1]
        return None

    def summary(self) -> dict[str, Any]:
        """Mean and p95 of every stage over the window, plus the counters."""
        rows = self.timings()
        out: dict[str, Any] = {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "submits": self.submits,
        }
        if rows:
            out["dispatches_per_frame"] = float(np.mean([r.dispatches for r in rows]))
        for stage in STAGES:
            values = [getattr(r, stage) for r in rows if getattr(r, stage) is not None]
            if values:
                a = np.asarray(values, float)
                out[stage] = {"mean": float(a.mean()), "p95": float(np.percentile(a, 95))}
        return out

    def as_rows(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.timings()]

"""Dynamic resolution: the CNN's input scale chosen frame by frame so GPU time fits the frame
budget, as games do around their upscalers; the output size never changes.

What it learns from (ANCHORS "Adapting to load and links"):
- Unreal's dynamic resolution: GPU time is proportional to the pixel count (scale squared);
  a 16-frame history weighted 0.9^age; a frame budget with headroom (10%); two frames over
  budget in a row is a panic (drop at once); at least 8 frames between changes; changes under
  2% ignored.
- libwebrtc's overuse detector: step down when usage is >= 85% of the frame interval on two
  checks in a row, up only when it is < 42%; a step up that led back to overuse doubles the
  wait before the next step up (10 s, up to 240 s).
When even the floor scale is over budget, the controller falls back to a classic scaler
(bilinear) and says so; it tries the model again at the floor after the ramp-up wait, once the
fallback's own usage leaves room.

`ScaleController.observe(ms, now)` takes the GPU time of each frame and answers a `Decision`
when the scale or the mode should change (None otherwise). Pure Python, no clocks of its own:
tests replay recorded timings (tests/stream/test_adapt.py).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    START = "start"
    OVER_BUDGET = "over budget"
    PANIC = "two frames over budget"
    ROOM = "room to spare"
    FLOOR = "over budget at the floor scale"
    RETRY = "retrying the model"


@dataclass(frozen=True)
class Decision:
    scale: float  # the CNN's input scale (of the source size)
    fallback: bool  # run the classic scaler instead of the model
    reason: Reason


@dataclass
class AdaptSettings:
    budget_ms: float  # one frame interval of the source
    floor: float = 0.25  # lowest input scale
    step: float = 0.05  # scales are multiples of this (few distinct sizes to compile)
    headroom: float = 0.10  # aim at budget x (1 - headroom)
    history: int = 16
    decay: float = 0.9
    min_frames_between: int = 8
    min_change: float = 0.02
    overuse: float = 0.85  # of the budget, on `checks` frames in a row: step down
    underuse: float = 0.42  # below: step up, after the ramp-up wait
    checks: int = 2
    ramp_up_s: float = 10.0  # first wait before a step up; doubles after a failed one
    max_ramp_up_s: float = 240.0


@dataclass
class ScaleController:
    settings: AdaptSettings
    scale: float = 1.0
    fallback: bool = False
    reason: Reason = Reason.START
    _times: deque[float] = field(default_factory=deque)
    _frames_since_change: int = 0
    _over: int = 0
    _under_since: float | None = None
    _ramp_up_s: float = 0.0
    _last_up: float | None = None  # when the last step up (or retry) happened
    changes: int = 0

    def __post_init__(self) -> None:
        self._ramp_up_s = self.settings.ramp_up_s

    @property
    def target_ms(self) -> float:
        """What a scale aims at: the budget less its headroom, and safely below overuse."""
        s = self.settings
        return s.budget_ms * min(1 - s.headroom, s.overuse - 0.05)

    def weighted_ms(self) -> float:
        """The history's GPU time, recent frames weighing most."""
        d = self.settings.decay
        weights = [d**age for age in range(len(self._times))]
        values = list(reversed(self._times))
        return sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)

    def observe(self, ms: float, now: float) -> Decision | None:
        s = self.settings
        self._times.append(ms)
        while len(self._times) > s.history:
            self._times.popleft()
        self._frames_since_change += 1
        usage = ms / s.budget_ms
        self._over = self._over + 1 if usage >= s.overuse else 0
        if usage < s.underuse:
            self._under_since = now if self._under_since is None else self._under_since
        else:
            self._under_since = None
        if self._over >= s.checks and self._last_up is not None and now - self._last_up < 30:
            # the last step up led straight back to overuse: wait longer before the next
            self._ramp_up_s = min(s.max_ramp_up_s, self._ramp_up_s * 2)
            self._last_up = None
        if self.fallback:
            return self._from_fallback(now)
        panic = self._over >= s.checks and self._frames_since_change >= 2
        if not panic and self._frames_since_change < s.min_frames_between:
            return None
        if self._over >= s.checks:
            if self.scale <= s.floor + 1e-9:
                return self._change(self.scale, True, Reason.FLOOR, now)
            wanted = self._predict(ms if panic else self.weighted_ms())
            return self._change(min(wanted, self.scale - s.step), False,
                                Reason.PANIC if panic else Reason.OVER_BUDGET, now)  # fmt: skip
        if self._ready_to_step_up(now) and self.scale < 1.0:
            wanted = max(self._predict(self.weighted_ms()), self.scale + s.step)
            return self._change(wanted, False, Reason.ROOM, now, up=True)
        return None

    def _from_fallback(self, now: float) -> Decision | None:
        """In fallback: back to the model at the floor once there is room, after the wait."""
        if self._frames_since_change >= self.settings.min_frames_between and self._ready_to_step_up(
            now
        ):
            return self._change(self.settings.floor, False, Reason.RETRY, now, up=True)
        return None

    def _ready_to_step_up(self, now: float) -> bool:
        return self._under_since is not None and now - self._under_since >= self._ramp_up_s

    def _predict(self, ms: float) -> float:
        """The scale whose GPU time meets the target, time being proportional to scale^2."""
        if ms <= 0:
            return 1.0
        return self.scale * math.sqrt(self.target_ms / ms)

    def _quantise(self, scale: float) -> float:
        s = self.settings
        q = round(round(scale / s.step) * s.step, 6)
        return min(1.0, max(s.floor, q))

    def _change(
        self, scale: float, fallback: bool, reason: Reason, now: float, up: bool = False
    ) -> Decision | None:
        scale = self._quantise(scale)
        same_mode = fallback == self.fallback
        if same_mode and abs(scale - self.scale) < self.settings.min_change * self.scale:
            return None
        self.scale, self.fallback, self.reason = scale, fallback, reason
        self._frames_since_change = 0
        self._over = 0
        self._under_since = None
        self._times.clear()
        self._last_up = now if up else None
        self.changes += 1
        return Decision(scale, fallback, reason)

    def state(self) -> dict[str, object]:
        return {
            "scale": self.scale,
            "fallback": self.fallback,
            "reason": str(self.reason),
            "gpu_ms": round(self.weighted_ms(), 3) if self._times else None,
            "budget_ms": round(self.settings.budget_ms, 3),
            "target_ms": round(self.target_ms, 3),
            "ramp_up_s": self._ramp_up_s,
            "changes": self.changes,
        }

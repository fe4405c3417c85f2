"""Click-to-photon: from a player's click or key to the first frame on their screen showing its
effect, as the viewer page measured it, kept for /api/stats and the bench.

The page (static/clicks.js) knows both ends on one clock (its own): the press and the display
of the first frame whose picture changed because of it (it reads the input counter that
stream/tools/input_app.py draws; any app that changes a marker per input would do). The
stages between come from the server's acknowledgement of the press and the frame's own
message, put on the page's clock with the ping offset:

    transit     press on the page -> the server has it (data channel)
    inject      the server has it -> XTEST (or an agent's queue) has it
    to_capture  injected -> the grab of the first frame showing it (the app draws, the source
                waits for its next tick: at most one capture interval)
    capture     the grab and its conversion to yuv420p
    pipeline    capture done -> processed (GPU upload, model, readback)
    encode      processed -> the packet left (encode, send queue)
    network     sent -> received by the page (rVFC receiveTime)
    decode      received -> shown (jitter buffer, decode, compositing)

and "decode" in its parts, from the frame's rVFC metadata (Chromium gives all three):

    waiting     received -> handed to the compositor, less the decode: the jitter buffer and
                the wait for the compositor's next frame (presentationTime -
                processingDuration - receiveTime; getStats' jitterBufferDelay, which the
                bench reports per frame, is the jitter buffer's share)
    decoding    the decoder's own time (processingDuration)
    render      handed to the compositor -> on screen (expectedDisplayTime - presentationTime)

A sample must carry "total"; a stage the page could not measure (no frame marker, no
receiveTime) is left out. `summarise` also names the p95's causes: for each sample at or
above the p95, the stage furthest above its own median (what made that press slow).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping
from typing import Any

STAGES = ("transit", "inject", "to_capture", "capture", "pipeline", "encode", "network", "decode")
DECODE_PARTS = ("waiting", "decoding", "render")  # "decode" on the page, in its parts
KEEP = 500
MAX_MS = 60_000.0


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def summarise(samples: Collection[Mapping[str, Any]]) -> dict[str, Any]:
    """Count, p50/p95/mean of the totals and each stage's median (stages a sample lacks are
    left out of that stage's median)."""
    totals = [s["total"] for s in samples]
    stages = {}
    for k in STAGES:
        values = [s[k] for s in samples if isinstance(s.get(k), int | float)]
        if values:
            stages[k] = round(percentile(values, 50) or 0.0, 2)
    parts = {}
    for k in DECODE_PARTS:
        values = [s[k] for s in samples if isinstance(s.get(k), int | float)]
        if values:
            parts[k] = round(percentile(values, 50) or 0.0, 2)
    p50, p95 = percentile(totals, 50), percentile(totals, 95)
    out = {
        "samples": len(totals),
        "p50_ms": round(p50, 2) if p50 is not None else None,
        "p95_ms": round(p95, 2) if p95 is not None else None,
        "mean_ms": round(sum(totals) / len(totals), 2) if totals else None,
        "stages_p50_ms": stages,
    }
    if parts:
        out["decode_parts_p50_ms"] = parts
    if p95 is not None and stages:
        out["p95_causes"] = tail_causes([s for s in samples if s["total"] >= p95], stages)
    return out


def tail_causes(
    slow: Collection[Mapping[str, Any]], medians: Mapping[str, float]
) -> dict[str, dict[str, float]]:
    """For the slow samples: per stage, how many of them it was the one furthest above its
    median in, and its mean excess over the median (ms). A p95 is read through these: one
    stage that stalls (the pipeline on a loaded host) versus delay spread over all."""
    count: dict[str, int] = {}
    excess: dict[str, list[float]] = {}
    for s in slow:
        over = {k: float(s[k]) - medians[k] for k in medians if isinstance(s.get(k), int | float)}
        if not over:
            continue
        worst = max(over, key=lambda k: over[k])
        count[worst] = count.get(worst, 0) + 1
        for k, v in over.items():
            excess.setdefault(k, []).append(v)
    return {
        k: {"worst_in": count.get(k, 0), "mean_excess_ms": round(sum(v) / len(v), 2)}
        for k, v in sorted(excess.items(), key=lambda kv: -count.get(kv[0], 0))
    }


class ClickToPhoton:
    """The last KEEP samples of every viewer."""

    def __init__(self) -> None:
        self.samples: deque[dict[str, float]] = deque(maxlen=KEEP)
        self.refused = 0

    def add(self, sample: dict[str, Any]) -> bool:
        """Keep a page's sample ({"total": ms, stage: ms, ...}); a malformed one is counted
        and dropped."""
        row: dict[str, float] = {}
        for key in ("total", *STAGES, *DECODE_PARTS):
            v = sample.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                self.refused += 1
                return False
            if not -MAX_MS <= v <= MAX_MS:
                self.refused += 1
                return False
            row[key] = float(v)
        if not 0 < row.get("total", -1) <= MAX_MS:
            self.refused += 1
            return False
        self.samples.append(row)
        return True

    def summary(self) -> dict[str, Any]:
        return summarise(self.samples) | {"refused": self.refused}

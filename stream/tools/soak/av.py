"""Audio-video sync through a soak (issue 26): when the server serves the beep test source
(`[audio] source = "beep"`: the scene flashes and beeps on one media-clock instant), one
extra light viewer (stream/tools/avsync's: video and audio, the RTCP sender-report mapping a
browser plays by) watches the whole run, and its beep/flash pairs become the report's
`av_offset` and the verdict's `av_offset_p95` / `av_drift` checks.

Other audio (a game's) has no beep to pair: its sync is not measured, and the checks say so
instead of failing; no audio at all skips them the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...auth import Role
from .. import avsync

if TYPE_CHECKING:
    from .runner import Soak

log = logging.getLogger("stream.soak")

RECONNECT_S = 5.0  # the sync viewer's pause before it connects again


def audio_source(health: dict[str, Any]) -> str:
    """What the server's /healthz says it serves as audio: "beep", "pulse" or "none"."""
    return str((health.get("audio") or {}).get("source") or "none")


@dataclass
class AvWatch:
    source: str
    mono0: float  # time.monotonic() at the soak's t = 0 (pairs carry monotonic times)
    cap: avsync.Capture = field(default_factory=avsync.Capture)
    error: str = ""  # the last connection's failure
    done: list[avsync.Capture] = field(default_factory=list)  # earlier connections
    reconnects: int = 0


async def watch(run: Soak, w: AvWatch) -> None:
    """Watch until cancelled (the run's end); what was seen stays in `w.cap` (and in
    `w.done`, the earlier connections'). Settles until the warm-up ends, so the first
    keyframes and sender reports are not judged. A connection the server drops (a loaded
    host misses ICE consent for seconds) is made again after a pause: an hour-long drift
    figure does not end at minute 7."""
    settle = max(1.0, run.opts.warmup_s - run.now())
    while True:
        try:
            await avsync.capture(
                run.base,
                run.opts.duration_s + 3600,
                token=run.token(Role.VIEWER) or None,
                settle_s=settle,
                cap=w.cap,
            )
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a failed sync viewer is judged, not fatal
            w.error = f"{type(e).__name__}: {e}"
            log.warning("av sync viewer: %s; again in %.0f s", w.error, RECONNECT_S)
        w.reconnects += 1
        w.done.append(w.cap)
        w.cap = avsync.Capture()
        await asyncio.sleep(RECONNECT_S)
        settle = 2.0  # a fresh connection's first keyframe and sender reports


def start(run: Soak) -> AvWatch | None:
    """The watch for a server with the beep source (None: nothing to pair)."""
    source = audio_source(run.health)
    if source != "beep":
        return None
    return AvWatch(source, time.monotonic() - run.now())


def figures(source: str, w: AvWatch | None) -> dict[str, Any]:
    """p50/p95 of the played offset (ms, + the sound late), |offset| p95, the drift (a
    Theil-Sen line through the run, ms per minute) and the pairs themselves (soak time, ms)."""
    out: dict[str, Any] = {"source": source, "pairs": 0}
    if w is None:
        return out
    caps = [*w.done, w.cap]
    found = sorted((p for c in caps for p in avsync.pairs(c)), key=lambda p: p["t"])
    series = [
        {
            "t": round(p["t"] - w.mono0, 3),
            "offset_ms": round(p["sync_ms"], 2),
            "arrival_ms": round(p["arrival_ms"], 2),
        }
        for p in found
    ]
    out.update(
        flashes=sum(len(c.flashes) for c in caps),
        beeps=sum(len(c.onsets) for c in caps),
        error=w.error,
        reconnects=w.reconnects,
    )
    return {**out, **offset_summary(series)}


def offset_summary(series: list[dict[str, float]]) -> dict[str, Any]:
    """The figures of (t seconds, offset_ms) pairs; the drift needs 3 pairs over 1 s."""
    off = [p["offset_ms"] for p in series]
    out: dict[str, Any] = {"pairs": len(series), "series": series}
    if not off:
        return out
    out["p50_ms"] = round(float(np.percentile(off, 50)), 2)
    out["p95_ms"] = round(float(np.percentile(off, 95)), 2)
    out["abs_p95_ms"] = round(float(np.percentile(np.abs(off), 95)), 2)
    t = np.array([p["t"] for p in series], float)
    if len(off) >= 3 and t.max() - t.min() >= 1.0:
        # Theil-Sen (judged: the clocks' drift, not a burst of late frames) and least squares
        # (shown beside it: how much the bursts tilt a plain fit)
        slope, icpt = avsync.drift_fit(t / 60.0, off)
        out["drift_ms_per_min"] = round(slope, 3)
        out["drift_at0_ms"] = round(icpt, 2)
        out["drift_lsq_ms_per_min"] = round(float(np.polyfit(t / 60.0, off, 1)[0]), 3)
    return out

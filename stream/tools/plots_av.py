"""A soak's audio-video offset over time: each beep less its flash as a viewer plays them
(RTCP sender-report sync, as a browser does) and as they arrive, with the goal's band and the
drift's fitted line, so a constant offset, a drifting one and a burst of late frames read
apart at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from infer.tools.plots import pyplot, save_figure


def has_av(result: dict[str, Any]) -> bool:
    return bool(result.get("av_pairs"))


def plot_av(result: dict[str, Any], png: Path) -> Path:
    pairs = result.get("av_pairs") or []
    if not pairs:
        raise ValueError("the soak result has no beep/flash pairs")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    t = np.array([p["t"] for p in pairs], float)
    off = np.array([p["offset_ms"] for p in pairs], float)
    goal = float((result.get("limits") or {}).get("max_av_offset_ms") or 40.0)
    ax.axhspan(-goal, goal, color="#55a868", alpha=0.12, lw=0, label=f"|offset| <= {goal:g} ms")
    ax.plot(t, [p["arrival_ms"] for p in pairs], ".", ms=3, color="#8c8c8c", label="arrival")
    ax.plot(t, off, ".", ms=4, color="#4c72b0", label="played (RTCP SR sync)")
    fig_av = (result.get("summary") or {}).get("av_offset") or {}
    drift = fig_av.get("drift_ms_per_min")
    if drift is not None and len(t) >= 3:
        at0 = fig_av.get("drift_at0_ms")
        b = float(np.median(off - drift * t / 60)) if at0 is None else float(at0)
        ax.plot(
            t, drift * t / 60 + b, "-", color="#c44e52", lw=1.2, label=f"drift {drift:+.2f} ms/min"
        )
        lsq = fig_av.get("drift_lsq_ms_per_min")
        if lsq is not None:
            ax.plot([], [], " ", label=f"(least squares {lsq:+.2f} ms/min)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title(
        f"audio - video offset a viewer sees (beep vs flash): p50 {fig_av.get('p50_ms')} ms, "
        f"p95 {fig_av.get('p95_ms')} ms, {len(pairs)} pairs",
        fontsize=9,
    )
    ax.set_xlabel("seconds since the start of the run")
    ax.set_ylabel("ms (+: the sound late)")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=7, loc="upper right")
    return save_figure(fig, png)

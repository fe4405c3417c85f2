"""The adaptation over time (stream/tools/bench/adapt.py): what the viewer received, and the
scale and mode the controller chose, with the model switches marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from infer.tools.plots import pyplot, save_figure


def received_fps(rows: list[dict[str, Any]], window_s: float = 2.0) -> tuple[np.ndarray, ...]:
    """The viewer's frame rate over the last `window_s` at each poll."""
    t = np.array([r["t"] for r in rows], float)
    n = np.array([r["frames"] for r in rows], float)
    fps = np.full(t.shape, np.nan)
    for i in range(len(t)):
        j = int(np.searchsorted(t, t[i] - window_s))
        if t[i] - t[j] >= window_s / 2:
            fps[i] = (n[i] - n[j]) / (t[i] - t[j])
    return t, fps


def plot_adapt(result: dict[str, Any], png: Path) -> Path:
    plt = pyplot()
    rows = result["rows"]
    t, fps = received_fps(rows)
    scale = np.array([np.nan if r["scale"] is None else r["scale"] for r in rows], float)
    fallback = np.array([not str(r.get("running_mode") or "").startswith("model") for r in rows])
    fig, (ax_fps, ax_scale) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    ax_fps.plot(t, fps, "-", color="#4c72b0", lw=1.4, label="frames the viewer decoded (2 s)")
    target = 1000.0 / float(result["budget_ms"])
    ax_fps.axhline(target, color="#55a868", ls="--", lw=1, label=f"source {target:g} fps")
    ax_fps.axhline(24, color="#c44e52", ls=":", lw=1, label="24 fps")
    ax_fps.set_ylabel("fps")
    ax_fps.set_ylim(0, target * 1.2)
    ax_scale.step(t, scale, where="post", color="#8172b2", lw=1.4, label="model input scale")
    if fallback.any():
        ax_scale.fill_between(
            t, 0, 1, where=fallback, step="post", color="#c44e52", alpha=0.15,
            label="fallback scaler running",
        )  # fmt: skip
    ax_scale.set_ylabel("input scale")
    ax_scale.set_ylim(0, 1.05)
    ax_scale.set_xlabel("seconds")
    for e in result.get("events") or []:
        for ax in (ax_fps, ax_scale):
            ax.axvline(e["t"], color="k", lw=0.8, alpha=0.6)
        ax_fps.text(e["t"], target * 1.1, f" -> {e['mode']}", fontsize=8)
    ax_fps.set_title(
        f"dynamic resolution: {result.get('source')} source, output size constant; "
        "the model switched mid-run",
        fontsize=9,
    )
    for ax in (ax_fps, ax_scale):
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, png)


def adapt_lines(result: dict[str, Any]) -> list[str]:
    t, fps = received_fps(result["rows"])
    ok = fps[np.isfinite(fps)]
    if not ok.size:
        return ["no frames received"]
    return [
        f"viewer fps: median {np.median(ok):.1f}, p10 {np.percentile(ok, 10):.1f}, "
        f"min {ok.min():.1f} over {t[-1]:.0f} s; mode switches at "
        + ", ".join(f"{e['t']:.0f} s -> {e['mode']}" for e in result.get("events") or [])
    ]

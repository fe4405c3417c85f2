"""The click-to-photon figure (kind "click-to-photon", what `python -m stream bench
--click-to-photon --json` writes): where a player's press goes before it is seen.

`<stem>.c2p.png`: left, the distribution of click-to-photon with its p50/p95, the aim (one
capture interval + the server's stages + one frame) and the issue's naive bar (130-157 ms);
right, the median of each stage stacked in order (stream/input/latency.py), next to the
median total, so the stages that dominate read at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infer.tools.plots import pyplot, save_figure

from ..input.latency import STAGES

STAGE_COLOURS = {
    "transit": "#8172b2",
    "inject": "#64b5cd",
    "to_capture": "#d9d9d9",
    "capture": "#4c72b0",
    "pipeline": "#55a868",
    "encode": "#dd8452",
    "network": "#c44e52",
    "decode": "#937860",
}


def plot_click_to_photon(result: dict, png: Path) -> Path:
    totals = np.array([s["total"] for s in result.get("samples", [])], dtype=float)
    s = result["summary"]
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 5), gridspec_kw={"width_ratios": [3, 2]})
    if totals.size:
        a.hist(totals, bins=min(30, max(5, totals.size // 2)), color="#4c72b0", alpha=0.8)
    for value, label, colour, style in (
        (s.get("p50_ms"), "p50", "k", "-"),
        (s.get("p95_ms"), "p95", "k", "--"),
        (result.get("aim_ms"), "aim", "#2f7d3c", "-."),
    ):
        if value is not None:
            a.axvline(value, color=colour, ls=style, lw=1.2, label=f"{label} {value:.0f} ms")
    naive = result.get("naive_ms")
    if naive:
        a.axvspan(naive[0], naive[1], color="#c44e52", alpha=0.15, label="naive loop (issue)")
    a.set_xlabel("click to photon, ms")
    a.set_ylabel("presses")
    a.legend(fontsize=8)
    a.set_title(f"{s.get('samples', 0)} presses, {result.get('missed', 0)} missed")
    stages = s.get("stages_p50_ms") or {}
    left = 0.0
    for k in STAGES:
        v = stages.get(k)
        if v is None:
            continue
        b.barh(0, v, left=left, color=STAGE_COLOURS[k], label=f"{k} {v:.1f}")
        left += v
    if s.get("p50_ms") is not None:
        b.barh(1, s["p50_ms"], color="#4c4c4c", label=f"total p50 {s['p50_ms']:.1f}")
    b.set_yticks([0, 1], ["stage medians", "total"])
    b.set_xlabel("ms")
    b.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    b.set_title("where the time goes (medians)")
    fig.suptitle(
        f"click to photon: {result.get('display')}@{result.get('fps')} "
        f"{result.get('mode')} -> {'x'.join(map(str, result.get('output') or []))} "
        f"{result.get('codec')}, {result.get('device', '')}",
        fontsize=9,
    )
    return save_figure(fig, png)


def click_to_photon_lines(result: dict) -> list[str]:
    s = result["summary"]
    st = ", ".join(f"{k} {v:.1f}" for k, v in (s.get("stages_p50_ms") or {}).items())
    return [
        f"p50 {s.get('p50_ms')} ms, p95 {s.get('p95_ms')} ms over {s.get('samples')} presses "
        f"(aim {result.get('aim_ms')} ms)",
        f"stage medians ms: {st}",
    ]

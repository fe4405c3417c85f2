"""A soak's viewer links over time: each viewer's VP8 temporal layer, its link estimate and
what it was sent (from the /api/stats polls), with the "bandwidth" faults' caps shaded, so a
capped viewer stepping down and back up reads at a glance next to the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infer.tools.plots import colour_map, pyplot, save_figure


def has_links(result: dict[str, Any]) -> bool:
    return any(p.get("links") for p in result.get("polls") or [])


def plot_links(result: dict[str, Any], png: Path) -> Path:
    plt = pyplot()
    names = {v.get("session"): v["name"] for v in result.get("viewers") or [] if v.get("session")}
    series: dict[str, list[tuple[float, Any, Any, Any]]] = {}
    for p in result.get("polls") or []:
        for sid, link in (p.get("links") or {}).items():
            series.setdefault(names.get(sid, sid[:8]), []).append(
                (p["t"], link.get("layer"), link.get("estimate_kbps"), link.get("sent_kbps"))
            )
    if not series:
        raise ValueError("the soak result has no per-viewer link figures")
    fig, (ax_layer, ax_rate) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    colours = colour_map(sorted(series))
    many = len(series) > 8
    for k, (name, rows) in enumerate(sorted(series.items())):
        t = [r[0] for r in rows]
        label = None if many and k else (f"{len(series)} viewers" if many else name)
        c = colours[name]
        ax_layer.step(t, [r[1] for r in rows], where="post", color=c, lw=1.2, label=label)
        ax_rate.plot(t, [r[3] for r in rows], "-", color=c, lw=1.0, label=label and f"{label} sent")
        ax_rate.plot(t, [r[2] for r in rows], ":", color=c, lw=1.0)
    for f in result.get("faults") or []:
        if f.get("kind") == "bandwidth" and not f.get("skipped"):
            for ax in (ax_layer, ax_rate):
                ax.axvspan(f["t0"], f["t1"], color="#c44e52", alpha=0.12, lw=0)
            ax_rate.text(f["t0"], f.get("kbps") or 0, f" cap {f.get('kbps', 0):.0f}", fontsize=7)
    ax_layer.set_ylabel("temporal layers 0..k")
    ax_layer.set_yticks([0, 1, 2])
    ax_layer.set_title(
        "each viewer's layer (shaded: a capped link); below, kbit/s sent (solid) and the link's "
        "estimate (dotted)",
        fontsize=9,
    )
    ax_rate.set_ylabel("kbit/s")
    ax_rate.set_xlabel("seconds since the start of the run")
    for ax in (ax_layer, ax_rate):
        ax.grid(True, alpha=0.25)
    ax_layer.legend(fontsize=7, loc="lower left")
    return save_figure(fig, png)

"""The rate-distortion figure (stream/tools/bench/rate_distortion.py): PSNR (top row) and SSIM
(bottom row) against the bitrate, a panel per content, a line per method, so which way of
placing the scaler gives the viewer the better picture for the same bits reads at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infer.tools.plots import pyplot, save_figure

STYLE = {
    "full": ("#4c4c4c", "o", "full-size encode"),
    "server-cnn": ("#c44e52", "s", "half size + CNN on the server, full-size encode"),
    "viewer-cnn": ("#4c72b0", "^", "half-size encode + CNN in the page"),
    "bilinear": ("#55a868", "v", "half-size encode + bilinear in the page"),
}


def plot_rate_distortion(result: dict[str, Any], png: Path) -> Path:
    plt = pyplot()
    from matplotlib import ticker

    contents = list(dict.fromkeys(r["content"] for r in result["rows"]))
    fig, axes = plt.subplots(
        2, len(contents), figsize=(4.2 * len(contents), 6.4), sharex=True, squeeze=False
    )
    for col, content in enumerate(contents):
        for row, metric in enumerate(("psnr", "ssim")):
            ax = axes[row][col]
            for method, (colour, mark, label) in STYLE.items():
                pts = sorted(
                    (r["kbps"] / 1000, r[metric])
                    for r in result["rows"]
                    if r["content"] == content and r["method"] == method
                )
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker=mark, color=colour, lw=1.5,
                            ms=5, label=label)  # fmt: skip
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.grid(True, which="both", alpha=0.25)
            if row == 0:
                ax.set_title(content, fontsize=10)
            else:
                ax.set_xlabel("bitrate produced (Mbit/s)")
            if col == 0:
                ax.set_ylabel("PSNR Y (dB)" if metric == "psnr" else "SSIM Y")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(
        f"what the viewer decodes vs the game rendered at {result['size']} "
        f"({result['codec']}, {result['frames']} frames @ {result['fps']} fps; higher is better)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    return save_figure(fig, png)

"""Engine plots (matplotlib, Agg): PNGs written next to a benchmark's JSON, and a report page.

Which plot a result gets is decided by its "kind" (see infer.tools.benchmark):

- "layers"  -> `<stem>.layers.png`: per-dispatch GPU time bars, slowest first, and
               `<stem>.roofline.png`: each kernel's arithmetic intensity (FLOPs / bytes bound)
               against its achieved GFLOP/s, under the device's measured compute and bandwidth
               ceilings (infer.tools.ceilings), when the result carries them.
- "engine"  -> `<stem>.engine.png`: median ms (p95 whisker) of our engine and each
               onnxruntime provider, grouped by model and size, ours/reference ratio on top.
- `python -m infer viz` draws a model's graph after our passes (`plot_graph`) and a grid of
  intermediate activation maps (`plot_activations`).

`write_report` turns a list of sections (title, PNG, figure lines) into one Markdown page.
Plots for the streaming side (pipeline timeline, soak latency) live in stream.tools.plots.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..compile import Program
    from ..graph import Graph, Node

_KERNEL_COLOURS = [
    "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3",
    "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd",
]  # fmt: skip


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, png: Path) -> Path:
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return png


def colour_map(keys: list[str]) -> dict[str, str]:
    return {k: _KERNEL_COLOURS[i % len(_KERNEL_COLOURS)] for i, k in enumerate(keys)}


def _shape_text(shape: list[int] | tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


# ---- per-layer time and roofline ---------------------------------------------------------


def _by_variant(result: dict) -> dict:
    """Conv dispatches named by their kernel variant (winograd2-wide, tiled...)."""
    return result | {
        "layers": [r | {"kernel": r.get("variant") or r["kernel"]} for r in result["layers"]]
    }


def plot_layers(result: dict, png: Path, top: int = 30) -> Path:
    plt = pyplot()
    result = _by_variant(result)
    layers = result["layers"][:top]
    colours = colour_map(sorted({r["kernel"] for r in result["layers"]}))
    kernels = sorted({r["kernel"] for r in layers})
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(layers) + 1.6))
    y = np.arange(len(layers))
    ax.barh(y, [r["ms"] for r in layers], color=[colours[r["kernel"]] for r in layers])
    ax.set_yticks(y, [r["label"] or r["kernel"] for r in layers], fontsize=8)
    ax.invert_yaxis()
    xmax = max((r["ms"] for r in layers), default=1.0)
    for k, r in enumerate(layers):
        note = (
            f" {r['gflops']:.1f} GFLOP/s, {r['bytes'] / 2**20:.1f} MiB"
            if r["flops"]
            else (f" {r['gbps']:.1f} GB/s, {r['bytes'] / 2**20:.1f} MiB")
        )
        ax.text(r["ms"], k, note, va="center", fontsize=7)
    ax.set_xlim(0, xmax * 1.45)
    ax.set_xlabel("GPU time per dispatch, ms (each run alone, best of repeats)")
    total = result["sum_of_layers_ms"]
    shown = "" if len(result["layers"]) <= top else f", top {top} of {len(result['layers'])}"
    ax.set_title(
        f"{result['model']} {_shape_text(result['input_shape'])} {result['precision']} on "
        f"{result['device']}\nsum of layers {total:.1f} ms, whole run "
        f"{result['whole_run']['median_ms']:.1f} ms{shown}",
        fontsize=9,
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in kernels]
    ax.legend(handles, kernels, fontsize=7, loc="lower right")
    return save_figure(fig, png)


def plot_roofline(result: dict, png: Path) -> Path:
    plt = pyplot()
    result = _by_variant(result)
    ceil = result.get("ceilings") or {}
    layers = [r for r in result["layers"] if r["flops"] > 0 and r["bytes"] > 0]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    kernels = sorted({r["kernel"] for r in layers})
    colours = colour_map(sorted({r["kernel"] for r in result["layers"]}))
    xs = [r["intensity"] for r in layers] or [1.0]
    lo = min(min(xs) / 4, 0.1)
    hi = max(max(xs) * 4, 100.0)
    if ceil:
        peak, bw = ceil["gflops"], ceil["gbps"]
        grid = np.logspace(math.log10(lo), math.log10(hi), 200)
        ax.plot(grid, np.minimum(peak, bw * grid), "k-", lw=1.5, label="measured roofline")
        ax.axhline(peak, color="k", ls=":", lw=0.8)
        ax.text(hi, peak, f"FMA peak {peak:.1f} GFLOP/s ", ha="right", va="bottom", fontsize=8)
        ridge = peak / bw
        ax.text(
            ridge,
            bw * ridge / 12,
            f"copy {bw:.1f} GB/s\nridge {ridge:.1f} flop/B",
            fontsize=8,
            ha="center",
        )
    total = sum(r["ms"] for r in layers) or 1.0
    for k in kernels:
        rows = [r for r in layers if r["kernel"] == k]
        ax.scatter(
            [r["intensity"] for r in rows],
            [r["gflops"] for r in rows],
            s=[20 + 200 * r["ms"] / total for r in rows],
            color=colours[k],
            alpha=0.75,
            edgecolor="k",
            lw=0.5,
            label=k,
        )
    for r in layers[:5]:  # the slowest kernels by name
        ax.annotate(
            r["label"],
            (r["intensity"], r["gflops"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ys = [r["gflops"] for r in layers] + ([ceil["gflops"]] if ceil else [])
    if ys:
        ax.set_ylim(min(ys) / 3, max(ys) * 2)
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.yaxis.set_major_formatter(plain)
    ax.set_xlabel("arithmetic intensity, FLOP per byte bound")
    ax.set_ylabel("achieved GFLOP/s")
    no_flops = len(result["layers"]) - len(layers)
    ax.set_title(
        f"roofline: {result['model']} {_shape_text(result['input_shape'])} on {result['device']}"
        + (f"\n({no_flops} data-movement dispatches without FLOPs not shown)" if no_flops else ""),
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="upper left", title="marker area ~ time", title_fontsize=7)
    return save_figure(fig, png)


# ---- engine vs onnxruntime ---------------------------------------------------------------


def plot_engine(result: dict, png: Path) -> Path:
    plt = pyplot()
    rows = [r for r in result["rows"] if "framesmith" in r]
    groups: list[tuple[str, str]] = []
    for r in rows:
        if (r["model"], r["size"]) not in groups:
            groups.append((r["model"], r["size"]))
    series: list[str] = []
    for r in rows:
        key = f"framesmith {r['precision']}"
        if key not in series:
            series.append(key)
    refs = []
    for r in rows:
        for k in r.get("references", {}):
            if k not in refs:
                refs.append(k)
    series += refs
    colours = colour_map(series)
    values: dict[tuple[int, str], dict] = {}
    for r in rows:
        g = groups.index((r["model"], r["size"]))
        values[(g, f"framesmith {r['precision']}")] = r["framesmith"] | {"ratios": r["ratios"]}
        for k, ref in r.get("references", {}).items():
            if "median_ms" in ref:
                values.setdefault((g, k), ref)
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(groups) * max(1, len(series)) / 2 + 2), 5))
    for s, name in enumerate(series):
        xs, ys, err = [], [], []
        for g in range(len(groups)):
            v = values.get((g, name))
            if v is None:
                continue
            xs.append(g + (s - (len(series) - 1) / 2) * width)
            ys.append(v["median_ms"])
            err.append(max(0.0, v["p95_ms"] - v["median_ms"]))
        bars = ax.bar(
            xs,
            ys,
            width,
            yerr=[np.zeros(len(err)), err],
            capsize=2,
            color=colours[name],
            label=name,
        )
        if name.startswith("framesmith"):
            for bar, g in zip(
                bars, [g for g in range(len(groups)) if (g, name) in values], strict=True
            ):
                v = values[(g, name)]
                ratios = v.get("ratios", {})
                if ratios:
                    many = len(ratios) > 1
                    text = "\n".join(
                        f"{r:.2f}x" + (f" {k.removeprefix('ort_')}" if many else "")
                        for k, r in ratios.items()
                    )
                    ax.text(
                        bar.get_x() + bar.get_width() / 2,
                        max(v["p95_ms"], bar.get_height()) * 1.06,
                        text,
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
    ax.set_xticks(range(len(groups)), [f"{m}\n{s}" for m, s in groups], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms per frame (median, p95 whisker)")
    skipped = [r for r in result["rows"] if "skipped" in r]
    ax.set_title(
        f"framesmith vs onnxruntime on {result.get('device')} ({result.get('runs')} runs each); "
        "labels: ours / reference"
        + (f"\n{len(skipped)} configurations skipped (see JSON)" if skipped else ""),
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.25)
    return save_figure(fig, png)


# ---- model graph and activations ---------------------------------------------------------

_OP_COLOURS = {
    "Conv": "#a6c8ff", "ConvTranspose": "#a6c8ff", "DepthToSpace": "#d9d9d9",
    "Resize": "#d7b8f3", "Add": "#ffd8a8", "Sub": "#ffd8a8", "Mul": "#ffd8a8",
    "Concat": "#d9d9d9", "Slice": "#d9d9d9", "MaxPool": "#b8e6c1", "AveragePool": "#b8e6c1",
}  # fmt: skip


def _node_text(node: Node, values: dict[str, Any]) -> tuple[str, bool]:
    text = node.op_type
    ks = node.attrs.get("kernel_shape")
    if ks is not None:
        text += " " + "x".join(str(int(k)) for k in ks)
    if node.op_type == "DepthToSpace":
        text += f" r{node.attrs.get('blocksize')}"
    act = node.attrs.get("_activation")
    fused = act is not None and act.get("kind", "none") != "none"
    if act is not None and fused:
        text += f" + {act['kind']}"
    out = node.outputs[0] if node.outputs else ""
    if out in values:
        text += "\n" + _shape_text(values[out].shape)
    return text, fused


def graph_levels(graph: Graph) -> dict[str, int]:
    """Longest path from the inputs to each node (by node name): the row it is drawn in."""
    level: dict[str, int] = {}
    made: dict[str, int] = {vi.name: 0 for vi in graph.inputs}
    for n in graph.nodes:
        lv = 1 + max((made.get(i, 0) for i in n.inputs if i in made), default=0)
        level[n.name] = lv
        for o in n.outputs:
            made[o] = lv
    return level


def plot_graph(program: Program, png: Path, title: str = "") -> Path:
    """Boxes and arrows of the graph after folding and fusion; fused activations in bold."""
    plt = pyplot()
    from matplotlib.patches import FancyBboxPatch

    graph = program.graph
    level = graph_levels(graph)
    rows: dict[int, list[str]] = {
        0: [vi.name for vi in graph.inputs if any(vi.name in n.inputs for n in graph.nodes)]
    }
    for n in graph.nodes:
        rows.setdefault(level[n.name], []).append(n.name)
    out_level = max(level.values(), default=0) + 1
    rows[out_level] = list(graph.outputs)
    width = max(len(r) for r in rows.values())
    pos: dict[tuple[int, str], tuple[float, float]] = {}
    for lv, names in rows.items():
        for k, name in enumerate(names):
            pos[(lv, name)] = (k - (len(names) - 1) / 2, -lv)
    fig_w = max(5.0, 2.6 * width)
    fig, ax = plt.subplots(figsize=(fig_w, 0.85 * (out_level + 1) + 0.8))
    bw, bh = 0.9, 0.55
    producer = {}
    for vi_name in rows[0]:
        producer[vi_name] = pos[(0, vi_name)]
    nodes = {n.name: n for n in graph.nodes}

    def box(xy: tuple[float, float], text: str, colour: str, bold: bool = False) -> None:
        x, y = xy
        ax.add_patch(
            FancyBboxPatch(
                (x - bw / 2, y - bh / 2),
                bw,
                bh,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                fc=colour,
                ec="#333333",
                lw=1.6 if bold else 0.8,
            )
        )
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=7,
            fontweight="bold" if bold else "normal",
        )

    def arrow(a: tuple[float, float], b: tuple[float, float]) -> None:
        skip = a[1] - b[1] > 1.5  # spans rows: bend it around the boxes in between
        side = 1 if a[0] >= 0 else -1
        ax.annotate(
            "",
            xy=(b[0] + (side * bw / 2 if skip else 0), b[1] + (0 if skip else bh / 2)),
            xytext=(a[0] + (side * bw / 2 if skip else 0), a[1] - (0 if skip else bh / 2)),
            arrowprops={
                "arrowstyle": "->",
                "lw": 0.8,
                "color": "#555555",
                "shrinkA": 0,
                "shrinkB": 0,
                "connectionstyle": f"arc3,rad={0.35 * side}" if skip else "arc3",
            },
        )

    for name in rows[0]:
        shape = program.values[name].shape if name in program.values else ()
        box(pos[(0, name)], f"input {name}\n{_shape_text(shape)}", "#eeeeee")
    for lv in range(1, out_level):
        for name in rows.get(lv, []):
            n = nodes[name]
            text, fused = _node_text(n, program.values)
            box(pos[(lv, name)], text, _OP_COLOURS.get(n.op_type, "#fff3b0"), bold=fused)
            for i in n.inputs:
                if i in producer:
                    arrow(producer[i], pos[(lv, name)])
            for o in n.outputs:
                producer[o] = pos[(lv, name)]
    for name in rows[out_level]:
        xy = pos[(out_level, name)]
        shape = program.values[name].shape if name in program.values else ()
        box(xy, f"output {name}\n{_shape_text(shape)}", "#eeeeee")
        if name in producer:
            arrow(producer[name], xy)
    ax.set_xlim(-width / 2 - 0.2, width / 2 + 0.2)
    ax.set_ylim(-out_level - 0.6, 0.6)
    ax.axis("off")
    fused_count = sum(1 for n in graph.nodes if n.attrs.get("_activation"))
    ax.set_title(
        (title + "\n" if title else "")
        + f"{len(graph.nodes)} nodes, {len(program.dispatches)} dispatches, "
        f"{fused_count} with a fused activation (bold), {program.flops / 1e9:.3f} GFLOP",
        fontsize=9,
    )
    return save_figure(fig, png)


def plot_activations(
    tensors: dict[str, np.ndarray], png: Path, channels: int = 8, title: str = ""
) -> Path:
    """One row per tensor (NCHW, batch 0): its first `channels` channel maps, each normalised
    to its own range (the range is printed under it)."""
    plt = pyplot()
    names = list(tensors)
    cols = max(min(channels, tensors[n].shape[1] if tensors[n].ndim == 4 else 1) for n in names)
    aspect = max(
        (
            t.shape[-2] / max(1, t.shape[-1])
            for t in map(np.asarray, tensors.values())
            if t.ndim >= 2
        ),
        default=1.0,
    )
    fig, axes = plt.subplots(
        len(names),
        cols + 1,
        squeeze=False,
        figsize=(1.5 * (cols + 1) + 0.6, (1.5 * min(aspect, 2.0) + 0.45) * len(names) + 0.5),
    )
    for r, name in enumerate(names):
        t = np.asarray(tensors[name])
        while t.ndim < 4:
            t = t[None]
        c = t.shape[1]
        label = ax = axes[r][0]
        rgb = (
            t[0, :3].transpose(1, 2, 0) if c >= 3 else np.repeat(t[0, :1], 3, 0).transpose(1, 2, 0)
        )
        lo, hi = float(rgb.min()), float(rgb.max())
        ax.imshow(np.clip((rgb - lo) / (hi - lo + 1e-12), 0, 1), interpolation="nearest")
        label.set_ylabel(f"{name[-18:]}\n{_shape_text(t.shape)}", fontsize=6)
        ax.set_title("ch 0-2 as RGB" if r == 0 else "", fontsize=6)
        for k in range(cols):
            ax = axes[r][k + 1]
            if k < c:
                m = t[0, k]
                ax.imshow(m, cmap="viridis", interpolation="nearest")
                ax.set_xlabel(f"c{k} [{m.min():.2g}, {m.max():.2g}]", fontsize=5)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
            if not ax.images:
                ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, png)


# ---- dispatch by kind, report ------------------------------------------------------------


def figures(result: dict) -> list[str]:
    """The key numbers of a result, as short lines for a report's caption."""
    kind = result.get("kind")
    if kind == "layers":
        lines = [
            f"{result['model']} at {_shape_text(result['input_shape'])} "
            f"({result['precision']}, {result['gflop']:.3f} GFLOP) on {result['device']}",
            f"whole run {result['whole_run']['median_ms']:.1f} ms median; sum of "
            f"{len(result['layers'])} dispatches run alone {result['sum_of_layers_ms']:.1f} ms",
        ]
        for r in result["layers"][:3]:
            lines.append(
                f"slowest: {r['label']} ({r['kernel']}) {r['ms']:.2f} ms, "
                f"{r['gflops']:.1f} GFLOP/s at {r['intensity']:.1f} flop/B"
            )
        c = result.get("ceilings")
        if c:
            lines.append(
                f"measured ceilings: {c['gflops']:.1f} GFLOP/s FMA, {c['gbps']:.1f} GB/s copy"
            )
        return lines
    if kind == "engine":
        lines = [
            f"device {result.get('device')}, {result.get('runs')} runs each; "
            f"references: {', '.join(result.get('providers') or []) or 'none'}"
        ]
        skipped = {r["skipped"] for r in result["rows"] if "skipped" in r}
        lines += [f"skipped: {s}" for s in sorted(skipped)]
        return lines
    return []


def table(result: dict) -> list[list[str]]:
    """A result as table rows (header first), for the report; [] when it has none."""
    if result.get("kind") != "engine":
        return []
    refs: list[str] = []
    for r in result["rows"]:
        refs += [k for k in r.get("references", {}) if k not in refs]
    head = ["model", "size", "precision", "GFLOP", "ours median ms", "ours p95 ms", "GFLOP/s"]
    head += [f"{k} ms" for k in refs] + [f"ours / {k}" for k in refs]
    rows = [head]
    for r in result["rows"]:
        if "framesmith" not in r:
            continue
        o = r["framesmith"]
        row = [
            r["model"],
            r["size"],
            r["precision"],
            f"{r['gflop']:.3f}",
            f"{o['median_ms']:.1f}",
            f"{o['p95_ms']:.1f}",
            f"{o['gflops']:.1f}",
        ]
        row += [
            f"{r['references'][k]['median_ms']:.1f}"
            if "median_ms" in r["references"].get(k, {})
            else "-"
            for k in refs
        ]
        row += [f"{r['ratios'][k]:.2f}x" if k in r["ratios"] else "-" for k in refs]
        rows.append(row)
    return rows if len(rows) > 1 else []


def plot_result(
    result: dict | str | Path, out_dir: Path | None = None, stem: str | None = None
) -> list[Path]:
    """Every plot for an engine result (a dict, or the path of its JSON). PNGs are written next
    to the JSON (or in out_dir) as <stem>.<plot>.png; returns their paths."""
    stem = stem or "result"
    if not isinstance(result, dict):
        path = Path(result)
        stem = path.stem
        out_dir = out_dir or path.parent
        result = dict(json.loads(path.read_text()))
    assert isinstance(result, dict)
    out_dir = Path(out_dir or ".")
    kind = result.get("kind")
    if kind == "layers":
        pngs = [plot_layers(result, out_dir / f"{stem}.layers.png")]
        if any(r["flops"] > 0 for r in result["layers"]):
            pngs.append(plot_roofline(result, out_dir / f"{stem}.roofline.png"))
        return pngs
    if kind == "engine":
        return [plot_engine(result, out_dir / f"{stem}.engine.png")]
    raise ValueError(
        f"no engine plot for a result of kind {kind!r} (engine results are 'layers' and "
        "'engine'; pipeline and soak results are plotted by `python -m stream plot`)"
    )


_TITLES = {
    "layers": "Per-layer GPU time",
    "roofline": "Roofline of the engine's kernels",
    "engine": "Engine vs onnxruntime",
    "timeline": "Pipeline timeline",
    "latency_hist": "Latency histogram",
    "latency_time": "Latency over time",
    "graph": "Model graph after our passes",
    "activations": "Intermediate activations",
}


def title_for(png: Path) -> str:
    suffix = Path(png).stem.rsplit(".", 1)[-1]
    return _TITLES.get(suffix, suffix)


def write_report(
    path: Path, sections: list[dict[str, Any]], title: str = "framesmith report"
) -> Path:
    """One Markdown page: per section a heading, its PNG(s) and its figure lines.

    A section is {"title": str, "pngs": [Path], "lines": [str], "table": [[str]] (header
    row first), "source": Path | None}; every key but the title is optional.
    Image links are relative to the report, so the page and its PNGs move together.
    """
    import datetime
    import os

    path = Path(path)
    base = path.parent.resolve()
    out = [f"# {title}", "", f"Generated {datetime.datetime.now():%Y-%m-%d %H:%M}.", ""]
    for s in sections:
        out += [f"## {s['title']}", ""]
        if s.get("source"):
            out += [f"From `{os.path.relpath(Path(s['source']).resolve(), base)}`.", ""]
        for png in s.get("pngs", []):
            rel = os.path.relpath(Path(png).resolve(), base)
            out += [f"![{title_for(png)}]({rel})", ""]
        for line in s.get("lines", []):
            out.append(f"- {line}")
        out.append("")
        rows = s.get("table") or []
        if rows:
            out.append("| " + " | ".join(rows[0]) + " |")
            out.append("|" + "---|" * len(rows[0]))
            out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
            out.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out))
    return path

"""Pipeline and soak plots (matplotlib, Agg), written as PNG next to the result's JSON.

`python -m stream plot RESULT.json [...] [--report report.md]` picks the plots by the JSON's
"kind" (a result without one is recognised by its keys). It also accepts the engine's kinds
("layers", "engine": drawn by infer.tools.plots), so one report page can hold every kind:

kind "pipeline" (what `python -m stream bench-pipeline --json` writes) ->
  `<stem>.timeline.png`: a Gantt chart of each frame's stages for a window of frames, the
  pipelined run (and the sequential run, on the same time scale, when "timeline_sequential"
  is present), so the overlap that double buffering buys is visible. Each timeline row is a
  stream.stats.FrameTiming as a dict; the bars are reconstructed from it as
      wait      [t_submitted - submit - upload - wait, + wait_ms]   waiting for a free slot
      upload    [.., + upload_ms]                                    planes to the GPU
      submit    [.., t_submitted]                                    encode + queue.submit
      in flight [t_submitted, t_done - readback_ms]                  queued / running on GPU
      readback  [t_done - readback_ms, t_done]                       map wait + frame build
  and gpu_ms (from timestamp queries, when the adapter has them) as a thin bar from
  t_submitted: GPU busy time, not its absolute position. Times are perf_counter seconds.

kind "service-bench" (what `python -m stream bench --json` writes) ->
  `<stem>.service.png`: by source resolution, the frames per second the pipeline ran
  sequentially and double-buffered and the rate the service's viewers held (the source
  rate drawn as a line), and per-frame latency: the pipeline's, and glass-to-glass p50 with
  a whisker to p95 from the viewers.

kind "soak" ->
  `<stem>.latency_hist.png`: histogram of per-frame latency with the measured p50/p95/p99
  and the thresholds drawn as vertical lines;
  `<stem>.latency_time.png`: latency over the run (per viewer, plus a rolling p95) with
  the thresholds as horizontal lines, and dropped frames marked.

The soak schema accepted (extra keys are ignored, so a soak report may carry much more):

    {
      "kind": "soak",
      "frames": [                        # one entry per received (or dropped) frame
        {"t": 12.03,                     # seconds since the run started
         "latency_ms": 41.2,             # glass-to-glass (marker) latency; null if dropped
         "viewer": "v0",                 # optional: which viewer received it
         "dropped": false}               # optional: true for a dropped / frozen frame
      ],
      "thresholds": {"p50_ms": 50, "p95_ms": 80, "p99_ms": 120},   # any subset, optional
      "duration_s": 120.0,               # optional
      "verdict": {"passed": true, ...}   # optional, shown in the title
    }
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from infer.tools.plots import colour_map, pyplot, save_figure

STAGE_COLOURS = {
    "wait": "#d9d9d9",
    "upload": "#4c72b0",
    "submit": "#dd8452",
    "in flight": "#b8e6c1",
    "readback": "#c44e52",
    "gpu": "#2f7d3c",
}


def kind_of(result: dict) -> str | None:
    if result.get("kind"):
        return result["kind"]
    if "timeline" in result:
        return "pipeline"
    if "frames" in result and isinstance(result["frames"], list):
        return "soak"
    return None


# ---- service bench ----------------------------------------------------------------------


def plot_service_bench(result: dict, png: Path) -> Path:
    rows = result["rows"]
    labels = [f"{r['size']}\n{r['mode']}" for r in rows]
    x = np.arange(len(rows))
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(rows) + 4), 4.2))

    def val(v: float | None) -> float:
        return np.nan if v is None else float(v)

    series = [
        ("pipeline, sequential", [val(r["pipeline"]["sequential_fps"]) for r in rows], "#8c8c8c"),
        (
            "pipeline, double-buffered",
            [val(r["pipeline"]["pipelined_fps"]) for r in rows],
            "#4c72b0",
        ),
        ("service, viewers held", [val(r["service"]["viewer_fps_mean"]) for r in rows], "#2f7d3c"),
    ]
    width = 0.27
    for k, (name, ys, colour) in enumerate(series):
        a.bar(x + (k - 1) * width, ys, width, label=name, color=colour)
    a.axhline(rows[0]["source_fps"], color="#c44e52", ls="--", lw=1, label="source fps")
    a.set_xticks(x, labels)
    a.set_ylabel("frames per second")
    a.set_title("throughput")
    a.legend(fontsize=8)
    lat = [
        (
            "pipeline, sequential",
            [val(r["pipeline"]["sequential_latency_ms"]) for r in rows],
            "#8c8c8c",
        ),
        (
            "double-buffered, offline (queued)",
            [val(r["pipeline"]["pipelined_latency_ms"]) for r in rows],
            "#4c72b0",
        ),
    ]
    for k, (name, ys, colour) in enumerate(lat):
        b.bar(x + (k - 1) * width, ys, width, label=name, color=colour)
    p50 = np.array([val(r["service"]["latency_p50_ms"]) for r in rows])
    p95 = np.array([val(r["service"]["latency_p95_ms"]) for r in rows])
    b.bar(x + width, p50, width, label="glass to glass p50 (whisker p95)", color="#2f7d3c")
    b.errorbar(
        x + width,
        p50,
        yerr=[np.zeros_like(p50), np.nan_to_num(p95 - p50)],
        fmt="none",
        ecolor="k",
        capsize=3,
    )
    b.set_xticks(x, labels)
    b.set_ylabel("ms per frame")
    b.set_title("latency")
    b.legend(fontsize=8)
    fig.suptitle(
        f"{result.get('model', '')} on {result.get('device', '')}, {result.get('codec', '')}",
        fontsize=9,
    )
    return save_figure(fig, png)


# ---- pipeline timeline ------------------------------------------------------------------


def stage_bars(row: dict) -> list[tuple[str, float, float]]:
    """(stage, start s, duration s) of one FrameTiming row, as described in the docstring."""
    ms = 1e-3
    t_sub, t_done = row["t_submitted"], row["t_done"]
    submit0 = t_sub - row.get("submit_ms", 0.0) * ms
    upload0 = submit0 - row.get("upload_ms", 0.0) * ms
    wait0 = upload0 - row.get("wait_ms", 0.0) * ms
    read0 = t_done - row.get("readback_ms", 0.0) * ms
    bars = [
        ("wait", wait0, upload0 - wait0),
        ("upload", upload0, submit0 - upload0),
        ("submit", submit0, t_sub - submit0),
        ("in flight", t_sub, max(0.0, read0 - t_sub)),
        ("readback", read0, t_done - read0),
    ]
    if row.get("gpu_ms"):
        bars.append(("gpu", t_sub, row["gpu_ms"] * ms))
    return [b for b in bars if b[2] > 0]


def _window(rows: list[dict], window: int) -> list[dict]:
    rows = [r for r in rows if r.get("t_done") and r.get("t_submitted")]
    if len(rows) <= window:
        return rows
    mid = len(rows) // 2  # steady state: away from start-up and drain
    return rows[mid - window // 2 : mid - window // 2 + window]


def plot_timeline(result: dict, png: Path, window: int = 12) -> Path:
    plt = pyplot()
    panels = [("pipelined", result.get("timeline") or [])]
    if result.get("timeline_sequential"):
        panels.insert(0, ("sequential", result["timeline_sequential"]))
    panels = [(name, _window(rows, window)) for name, rows in panels if rows]
    if not panels:
        raise ValueError("the result has no timeline rows to plot")
    spans = [
        max(r["t_done"] for r in rows) - min(stage_bars(r)[0][1] for r in rows)
        for _, rows in panels
    ]
    span = max(spans) * 1000
    fig, axes = plt.subplots(
        len(panels),
        1,
        squeeze=False,
        figsize=(10, 0.3 * sum(len(r) for _, r in panels) + 1.6 * len(panels)),
    )
    for ax, (name, rows) in zip(axes[:, 0], panels, strict=True):
        t0 = min(stage_bars(r)[0][1] for r in rows)
        for k, row in enumerate(rows):
            for stage, start, dur in stage_bars(row):
                thin = stage == "gpu"
                ax.broken_barh(
                    [((start - t0) * 1000, dur * 1000)],
                    (k - (0.12 if thin else 0.38), 0.24 if thin else 0.76),
                    color=STAGE_COLOURS[stage],
                    ec="none",
                )
        ax.set_yticks(range(len(rows)), [f"frame {r['index']}" for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, span * 1.02)
        # the rate of the frames shown (one round), not the run's figure: they can differ
        done = sorted(r["t_done"] for r in rows)
        fps = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else 0
        ms_per = [r["total_ms"] for r in rows if r.get("total_ms")]
        ax.set_title(
            f"{name}: "
            + (f"{fps:.1f} fps here, " if fps else "")
            + (f"latency {np.median(ms_per):.1f} ms median " if ms_per else "")
            + f"({len(rows)} frames shown)",
            fontsize=9,
        )
        ax.grid(True, axis="x", alpha=0.25)
    axes[-1, 0].set_xlabel("ms since the first frame shown")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STAGE_COLOURS.values()]
    axes[0, 0].legend(handles, list(STAGE_COLOURS), fontsize=7, ncol=6, loc="upper right")
    size = ""
    if "input" in result and "output" in result:
        (iw, ih), (ow, oh) = result["input"], result["output"]
        size = f" {iw}x{ih} -> {ow}x{oh}"
    fig.suptitle(
        f"pipeline timeline{size}, {result.get('slots', '?')} slots"
        + (f", speedup {result['speedup']:.2f}x" if "speedup" in result else ""),
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, png)


# ---- soak latency -----------------------------------------------------------------------


def _latencies(result: dict) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    frames = result.get("frames") or []
    t = np.array([float(f.get("t", i)) for i, f in enumerate(frames)], float)
    lat = np.array(
        [np.nan if f.get("latency_ms") is None else float(f["latency_ms"]) for f in frames], float
    )
    viewer = [str(f.get("viewer", "")) for f in frames]
    dropped = np.array([bool(f.get("dropped")) or f.get("latency_ms") is None for f in frames])
    return t, lat, viewer, dropped


def _threshold_items(result: dict) -> list[tuple[str, float]]:
    th = result.get("thresholds") or {}
    return [(k, float(v)) for k, v in th.items() if k.endswith("_ms") and v is not None]


_Q_STYLES = {"p50": ":", "p95": "--", "p99": "-."}


def plot_latency_hist(result: dict, png: Path) -> Path:
    plt = pyplot()
    _, lat, _, dropped = _latencies(result)
    ok = lat[np.isfinite(lat)]
    if ok.size == 0:
        raise ValueError("the soak result has no frame latencies")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(ok, bins=min(80, max(10, ok.size // 20)), color="#4c72b0", alpha=0.85)
    for q in (50, 95, 99):
        v = float(np.percentile(ok, q))
        ax.axvline(v, color="k", ls=_Q_STYLES[f"p{q}"], lw=1)
        ax.text(v, ax.get_ylim()[1] * 0.97, f" p{q} {v:.1f}", fontsize=7, va="top")
    for name, v in _threshold_items(result):
        ax.axvline(v, color="#c44e52", lw=1.6)
        ax.text(
            v,
            ax.get_ylim()[1] * 0.6,
            f" limit {name.removesuffix('_ms')} {v:.0f}",
            color="#c44e52",
            fontsize=7,
            rotation=90,
            va="top",
        )
    ax.set_xlabel("latency per frame, ms")
    ax.set_ylabel("frames")
    ax.set_title(_soak_title(result, ok, dropped), fontsize=9)
    return save_figure(fig, png)


def _soak_title(result: dict, ok: np.ndarray, dropped: np.ndarray) -> str:
    verdict = result.get("verdict") or {}
    passed = verdict.get("passed")
    v = "" if passed is None else (" — PASSED" if passed else " — FAILED")
    return (
        f"soak: {ok.size} frames, {int(dropped.sum())} dropped, "
        f"p50 {np.percentile(ok, 50):.1f} / p95 {np.percentile(ok, 95):.1f} / "
        f"p99 {np.percentile(ok, 99):.1f} ms{v}"
    )


def plot_latency_time(result: dict, png: Path) -> Path:
    plt = pyplot()
    t, lat, viewer, dropped = _latencies(result)
    ok_mask = np.isfinite(lat)
    if not ok_mask.any():
        raise ValueError("the soak result has no frame latencies")
    fig, ax = plt.subplots(figsize=(10, 4.5))
    viewers = sorted(set(viewer))
    colours = colour_map(viewers)
    for v in viewers:
        m = ok_mask & np.array([x == v for x in viewer])
        ax.plot(
            t[m],
            lat[m],
            ".",
            ms=2,
            alpha=0.5,
            color=colours[v],
            # an hour's churn brings 100+ viewers: one legend entry for them all then
            label=(f"viewer {v}" if v else "frames")
            if len(viewers) <= 8
            else (f"{len(viewers)} viewers" if v == viewers[0] else None),
        )
    order = np.argsort(t[ok_mask])
    ts, ls = t[ok_mask][order], lat[ok_mask][order]
    n = max(5, ls.size // 50)
    if ls.size >= n:  # at most ~1000 points, so an hour-long soak plots quickly
        at = np.unique(np.linspace(n - 1, ls.size - 1, min(ls.size - n + 1, 1000)).astype(int))
        roll = np.array([np.percentile(ls[i - n + 1 : i + 1], 95) for i in at])
        ax.plot(ts[at], roll, "k-", lw=1.2, label=f"rolling p95 ({n} frames)")
    if dropped.any():
        ymin = float(np.nanmin(lat)) if ok_mask.any() else 0.0
        ax.plot(
            t[dropped],
            np.full(int(dropped.sum()), ymin),
            "x",
            color="#c44e52",
            ms=4,
            label="dropped",
        )
    for name, limit in _threshold_items(result):
        ax.axhline(limit, color="#c44e52", lw=1.2, ls="--")
        ax.text(
            ts[-1],
            limit,
            f" {name.removesuffix('_ms')} limit {limit:.0f} ms",
            color="#c44e52",
            fontsize=7,
            va="bottom",
            ha="right",
        )
    ax.set_xlabel("seconds since the start of the run")
    ax.set_ylabel("latency, ms")
    ax.set_title(_soak_title(result, lat[ok_mask], dropped), fontsize=9)
    ax.legend(fontsize=7, loc="upper left", markerscale=3)
    ax.grid(True, alpha=0.25)
    return save_figure(fig, png)


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def service_bench_lines(row: dict) -> str:
    """One row of `python -m stream bench` as text (what its table and reports show)."""
    p, s = row["pipeline"], row["service"]
    out = s.get("output") or p.get("output")
    out_s = f"{out[0]}x{out[1]}" if out else "?"
    lines = [
        f"{row['size']} -> {out_s} ({row['mode']}), source {row['source_fps']:g} fps",
        f"  pipeline  sequential {_f(p['sequential_fps'])} fps / {_f(p['sequential_latency_ms'])}"
        f" ms, pipelined {_f(p['pipelined_fps'])} fps / {_f(p['pipelined_latency_ms'])} ms,"
        f" speedup {_f(p['speedup'], '.2f')}x, GPU idle a frame"
        f" {_f(p.get('gpu_idle_ms_sequential'))} / {_f(p.get('gpu_idle_ms_pipelined'))} ms",
        f"  service   {_f(s['viewer_fps_mean'])} fps held, glass-to-glass p50"
        f" {_f(s['latency_p50_ms'])} / p95 {_f(s['latency_p95_ms'])} ms,"
        f" drops {_f(100 * s['drop_ratio'] if s['drop_ratio'] is not None else None)}%",
    ]
    if not s.get("latency_samples") and s.get("viewer_fps_mean"):
        lines.append("  (the frame marker is unreadable at this output size: no latency)")
    if s.get("error"):
        lines.append(f"  error: {s['error']}")
    return "\n".join(lines)


# ---- dispatch by kind ---------------------------------------------------------------------


def figures(result: dict) -> list[str]:
    kind = kind_of(result)
    if kind == "pipeline":
        lines = [
            f"{result.get('frames')} frames {result['input'][0]}x{result['input'][1]} -> "
            f"{result['output'][0]}x{result['output'][1]}, {result.get('slots')} slots",
            f"sequential {result['sequential_fps']:.1f} fps, pipelined "
            f"{result['pipelined_fps']:.1f} fps: speedup {result['speedup']:.2f}x",
        ]
        if result.get("gpu_idle_ms_sequential") is not None:
            lines.append(
                f"GPU idle a frame: sequential {result['gpu_idle_ms_sequential']:.1f} ms, "
                f"pipelined {result['gpu_idle_ms_pipelined']:.1f} ms"
            )
        stages = result.get("stages") or {}
        parts = [
            f"{k.removesuffix('_ms')} {v['mean']:.1f}"
            for k, v in stages.items()
            if isinstance(v, dict) and "mean" in v
        ]
        if parts:
            lines.append("mean stage ms: " + ", ".join(parts))
        return lines
    if kind == "service-bench":
        return [line for r in result["rows"] for line in service_bench_lines(r).splitlines()]
    if kind == "soak":
        _, lat, _, dropped = _latencies(result)
        ok = lat[np.isfinite(lat)]
        lines = [_soak_title(result, ok, dropped)] if ok.size else []
        lines += [f"threshold {k} = {v:g}" for k, v in _threshold_items(result)]
        return lines
    if kind == "click-to-photon":
        from .plots_input import click_to_photon_lines

        return click_to_photon_lines(result)
    if kind == "adapt-run":
        from .plots_adapt import adapt_lines

        return adapt_lines(result)
    if kind in ("layers", "engine"):
        from infer.tools.plots import figures as engine_figures

        return engine_figures(result)
    return []


def plot_result(result: dict | str | Path, out_dir: Path | None = None) -> list[Path]:
    stem = "result"
    if not isinstance(result, dict):
        path = Path(result)
        stem = path.stem
        out_dir = out_dir or path.parent
        result = dict(json.loads(path.read_text()))
    assert isinstance(result, dict)
    out_dir = Path(out_dir or ".")
    kind = kind_of(result)
    if kind == "pipeline":
        return [plot_timeline(result, out_dir / f"{stem}.timeline.png")]
    if kind == "service-bench":
        return [plot_service_bench(result, out_dir / f"{stem}.service.png")]
    if kind == "soak":
        from .plots_links import has_links, plot_links

        out = [
            plot_latency_hist(result, out_dir / f"{stem}.latency_hist.png"),
            plot_latency_time(result, out_dir / f"{stem}.latency_time.png"),
        ]
        if has_links(result):
            out.append(plot_links(result, out_dir / f"{stem}.links.png"))
        return out
    if kind == "click-to-photon":
        from .plots_input import plot_click_to_photon

        return [plot_click_to_photon(result, out_dir / f"{stem}.c2p.png")]
    if kind == "adapt-run":
        from .plots_adapt import plot_adapt

        return [plot_adapt(result, out_dir / f"{stem}.adapt.png")]
    if kind == "rate-distortion":
        from .plots_rd import plot_rate_distortion

        return [plot_rate_distortion(result, out_dir / f"{stem}.rd.png")]
    if kind in ("layers", "engine"):  # engine results too, so one report can hold all kinds
        from infer.tools import plots as engine_plots

        return engine_plots.plot_result(result, out_dir, stem)
    raise ValueError(
        f"no plot for a result of kind {kind!r} "
        "(known kinds: pipeline, service-bench, soak, click-to-photon, adapt-run, rate-distortion, "
        "layers, engine)"
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    from infer.tools.plots import table, write_report

    p = argparse.ArgumentParser(
        prog="python -m stream plot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", nargs="+", help="JSON from bench-pipeline --json or a soak run")
    p.add_argument("--out-dir", help="where PNGs go (default: next to each JSON)")
    p.add_argument("--report", help="write a one-page Markdown report embedding the PNGs")
    args = p.parse_args(argv)
    sections = []
    for src in args.results:
        try:
            result = json.loads(Path(src).read_text())
            pngs = plot_result(Path(src), Path(args.out_dir) if args.out_dir else None)
        except (OSError, ValueError, KeyError) as e:
            print(f"error: {src}: {e}")
            return 2
        for png in pngs:
            print(f"wrote {png}")
        sections.append(
            {
                "title": f"{Path(src).stem} ({kind_of(result)})",
                "pngs": pngs,
                "lines": figures(result),
                "table": table(result),
                "source": Path(src),
            }
        )
    if args.report:
        print(f"wrote {write_report(Path(args.report), sections)}")
    return 0

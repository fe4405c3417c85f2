"""The soak's report: the JSON file, the verdict as text, the latency plots."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("stream.soak")


def _f(v: float | None, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def format_verdict(report: dict[str, Any]) -> str:
    s = report["summary"]
    slopes = s.get("slopes_per_min", {})
    early = f" (ended early by {report['stopped_by']})" if report.get("stopped_by") else ""
    lines = [
        f"soak: {s['duration_s']:.0f} s{early}, {s['viewers_total']} viewer sessions, "
        f"{s['frames']} frames ({s['frames_judged']} judged), faults {s['faults']}",
        f"latency ms p50 {_f(s['latency_p50_ms'])}  p95 {_f(s['latency_p95_ms'])}  "
        f"p99 {_f(s['latency_p99_ms'])}   fps min {_f(s['fps_min'])}  "
        f"drops {s['dropped']}/{s['expected']}  frozen {s['frozen']}  "
        f"max gap {_f(s['max_gap_s'], 2)} s  client lag max {_f(s.get('client_lag_max_s'), 2)} s"
        f"  skips {s.get('jitter_skips', '-')}  misread {s.get('misread', '-')}",
        f"  of which server (born -> sent) p50 {_f(s.get('server_p50_ms'))}  p95 "
        f"{_f(s.get('server_p95_ms'))}  p99 {_f(s.get('server_p99_ms'))}; sent -> decoded p50 "
        f"{_f(s.get('send_p50_ms'))}  p95 {_f(s.get('send_p95_ms'))}  "
        f"p99 {_f(s.get('send_p99_ms'))}",
        f"slopes per min: rss {_f(slopes.get('rss_mb'), 2)} MB  gpu "
        f"{_f(slopes.get('gpu_mb'), 3)} MB  fds {_f(slopes.get('fds'), 2)}  peer connections "
        f"{_f(slopes.get('peers'), 2)}",
    ]
    av = s.get("av_offset") or {}
    if av.get("pairs"):
        lines.append(
            f"audio-video offset ms ({av['pairs']} beep/flash pairs, + the sound late): p50 "
            f"{_f(av.get('p50_ms'))}  p95 {_f(av.get('p95_ms'))}  |p95| "
            f"{_f(av.get('abs_p95_ms'))}  drift {_f(av.get('drift_ms_per_min'), 2)} ms/min"
        )
    for c in report["checks"]:
        skipped = str(c.get("detail", "")).startswith("skipped")
        mark = "skip" if skipped else "ok  " if c["ok"] else "FAIL"
        val = "-" if c["value"] is None else c["value"]
        lines.append(
            f"  {mark} {c['name']:<28} {val} {c.get('op', '')} {c['limit']} "
            f"{c.get('unit', '')}"
            + (f"  ({c['detail']})" if (not c["ok"] or skipped) and c.get("detail") else "")
        )
    lines.append("PASSED" if report["passed"] else "FAILED")
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps(report, separators=(",", ":"), allow_nan=False, default=_json_default)
    )
    tmp.replace(path)


def _json_default(o: object) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def write_plots(report: dict[str, Any], report_path: Path, out_dir: Path) -> list[Path]:
    """Latency histogram and latency over time (stream.tools.plots) of the judged frames:
    after warm-up, outside faults (a stalled viewer's backlog would flatten the rest); each
    viewer's temporal layer and rate over the whole run (plots_links.py); the audio-video
    offset over the run (plots_av.py)."""
    try:
        from .. import plots
    except ImportError as e:  # the plots extra (matplotlib) is not installed
        log.warning("no plots: %s (pip install framesmith[plots])", e)
        return []
    judged = {k: v for k, v in report.items() if k not in ("frames", "polls")}
    warm = report["limits"]["warmup_s"]
    judged["frames"] = [f for f in report["frames"] if f["t"] >= warm and not f.get("faulted")]
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = report_path.stem
    out = []
    try:
        out.append(plots.plot_latency_hist(judged, out_dir / f"{stem}.latency_hist.png"))
        out.append(plots.plot_latency_time(judged, out_dir / f"{stem}.latency_time.png"))
    except ValueError as e:  # no latencies at all
        log.warning("no plots: %s", e)
    from ..plots_links import has_links, plot_links

    if has_links(report):  # every viewer's layer and rate, faults included
        out.append(plot_links(report, out_dir / f"{stem}.links.png"))
    from ..plots_av import has_av, plot_av

    if has_av(report):  # the audio-video offset over the run (a server with beep audio)
        out.append(plot_av(report, out_dir / f"{stem}.av_offset.png"))
    return [Path(p) for p in out]

"""The soak's verdict: what the viewers saw and how the server's resources grew, against limits.

Judged: viewers outside their faults (plus `grace_s`) after `warmup_s`: latency p50/p95/p99,
every viewer's frame rate, drop / freeze / decode-error ratios, the longest gap any viewer
went without frames (the server keeps serving everyone else while one is faulted), and the
growth of the server's RSS, GPU memory, fds and open peer connections as least-squares
slopes per minute (a leak shows as a slope, not as a level). Each step is a small function;
`analyse` puts them together into the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import av
from .records import Check, FrameRow, Poll
from .settings import FAULTS
from .viewer import JOIN_TIMEOUT_S, Viewer

if TYPE_CHECKING:
    from .runner import Soak

Window = tuple[float, float]
GROWTH = ("rss_mb", "gpu_mb", "fds", "peers")


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def inside(t: float, wins: list[Window]) -> bool:
    return any(a <= t <= b for a, b in wins)


def overlaps(a: float, b: float, wins: list[Window]) -> bool:
    return any(x <= b and a <= y for x, y in wins)


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t seconds, value) points, per minute."""
    pts = [(t, v) for t, v in points if v is not None]
    if len(pts) < 3:
        return None
    t = np.array([p[0] for p in pts], float)
    v = np.array([p[1] for p in pts], float)
    if t.max() - t.min() < 1e-6:
        return None
    return float(np.polyfit(t / 60.0, v, 1)[0])


def fault_windows(run: Soak, viewer: str) -> list[Window]:
    """When `viewer` is excused: its own faults and everyone's, plus the grace time (a
    capped link: the time it has to get back on every layer; bandwidth_checks judges it)."""
    g, r = run.opts.grace_s, run.opts.bandwidth_recovery_s
    return [
        (f.t0, f.t1 + (max(g, r) if f.kind == "bandwidth" else g))
        for f in run.faults
        if f.windowed and f.viewer in (None, viewer)
    ]


BANDWIDTH_SETTLE_S = 2.0  # a receiver report's time: the link's estimate has not fallen yet


def _rate(rows: list[FrameRow], t0: float, t1: float) -> tuple[float | None, float | None]:
    """Frames per second and the longest gap (edges included) of `rows` in [t0, t1]."""
    if t1 - t0 < 1.0:
        return None, None
    ts = [r.t for r in rows if t0 <= r.t <= t1]
    edges = [t0, *ts, t1]
    return len(ts) / (t1 - t0), max(b - a for a, b in zip(edges, edges[1:], strict=False))


def bandwidth_checks(run: Soak, end: float) -> tuple[list[Check], list[dict[str, Any]]]:
    """Each capped link: its viewer's frame rate and longest gap under the cap, the others'
    frame rate meanwhile, and how long it took to be back on every layer (from the polls'
    per-session layer)."""
    opts = run.opts
    rows: dict[str, list[FrameRow]] = {}
    for r in run.frames:
        rows.setdefault(r.viewer, []).append(r)
    figures: list[dict[str, Any]] = []
    for f in run.faults:
        if f.kind != "bandwidth" or f.skipped or f.viewer is None:
            continue
        t0, t1 = f.t0 + BANDWIDTH_SETTLE_S, min(f.t1, end)
        fps, gap = _rate(rows.get(f.viewer, []), t0, t1)
        others = [
            _rate(rows.get(v.name, []), f.t0, t1)[0]
            for v in run.viewers
            if v.name != f.viewer and v.name != "chromium"
            and v.first_frame is not None and v.first_frame < f.t0 - 2
            and (v.left is None or v.left > t1)
        ]  # fmt: skip
        session = f.detail.get("session", "")
        back = next(
            (
                p.t - f.t1
                for p in run.polls
                if p.t >= f.t1 and (p.links.get(session) or {}).get("layer") == 2
            ),
            None,
        )
        figures.append(
            {
                "viewer": f.viewer,
                "t0": f.t0,
                "t1": f.t1,
                "kbps": f.detail.get("kbps"),
                "fps": None if fps is None else round(fps, 2),
                "max_gap_s": None if gap is None else round(gap, 3),
                "others_fps_min": min((o for o in others if o is not None), default=None),
                "back_s": None if back is None else round(back, 3),
                "ended_early": end < f.t1 + opts.bandwidth_recovery_s,
            }
        )
    # a cap the run ended in, or whose recovery it did not cover, is reported, not judged
    judged = [x for x in figures if not x["ended_early"]]
    if not judged:
        return [], figures
    fps_values: list[float] = [x["fps"] for x in judged if x["fps"] is not None]
    backs = [x["back_s"] for x in judged]
    others_fps: list[float] = [
        x["others_fps_min"] for x in judged if x["others_fps_min"] is not None
    ]
    out = [
        check(
            "bandwidth_capped_fps",
            min(fps_values, default=None),
            opts.bandwidth_min_fps,
            at_least=True,
            unit="fps",
        ),
        check(
            "bandwidth_capped_gap",
            max((x["max_gap_s"] for x in judged if x["max_gap_s"] is not None), default=None),
            opts.bandwidth_max_gap_s,
            unit="s",
        ),
        check(
            "bandwidth_others_fps",
            min(others_fps, default=None),
            opts.min_fps,
            at_least=True,
            unit="fps",
            need=False,
        ),
        check(
            "bandwidth_recovery",
            None if None in backs else max(backs),
            opts.bandwidth_recovery_s,
            unit="s",
            why="the capped viewer was not back on every temporal layer in time",
        ),
    ]
    return out, figures


def latency_figures(judged: list[FrameRow]) -> dict[str, Any]:
    lat = [r.latency_ms for r in judged if r.latency_ms is not None]
    send = [r.send_ms for r in judged if r.send_ms is not None]
    server = [
        r.latency_ms - r.send_ms
        for r in judged
        if r.latency_ms is not None and r.send_ms is not None
    ]
    return {
        "latency_samples": len(lat),
        "latency_p50_ms": pct(lat, 50),
        "latency_p95_ms": pct(lat, 95),
        "latency_p99_ms": pct(lat, 99),
        "latency_max_ms": max(lat, default=None),
        "send_p50_ms": pct(send, 50),
        "send_p95_ms": pct(send, 95),
        "send_p99_ms": pct(send, 99),
        # born -> handed to the viewer's sender: the server's share of the latency; the
        # rest (send_*) is transport and the viewer's jitter buffer and decoder
        "server_p50_ms": pct(server, 50),
        "server_p95_ms": pct(server, 95),
        "server_p99_ms": pct(server, 99),
        "server_max_ms": max(server, default=None),
    }


def continuity_figures(judged: list[FrameRow], freeze_ms: float) -> dict[str, Any]:
    """Drops (marker numbers skipped) and freezes (long gaps between frames)."""
    read = [r for r in judged if r.n is not None]
    missed = sum(r.missed for r in read)
    expected = len(read) + missed
    intervals = [r.interval_ms for r in judged if r.interval_ms is not None]
    frozen = sum(1 for x in intervals if x > freeze_ms)
    return {
        "dropped": missed,
        "expected": expected,
        "drop_ratio": missed / expected if expected else None,
        "frozen": frozen,
        "intervals": len(intervals),
        "frozen_ratio": frozen / len(intervals) if intervals else None,
    }


@dataclass
class ViewerFigures:
    rows: list[dict[str, Any]] = field(default_factory=list)  # per viewer, for the report
    worst_gap: float = 0.0
    worst_gap_at: dict[str, Any] = field(default_factory=dict)
    joins_failed: list[str] = field(default_factory=list)


def viewer_figures(run: Soak, wins: dict[str, list[Window]], end: float) -> ViewerFigures:
    """Per viewer: join time, frame rate over its active span and the longest gap, both
    outside its faults."""
    warm = run.opts.warmup_s
    out = ViewerFigures()
    by_viewer: dict[str, list[FrameRow]] = {}
    for r in run.frames:
        by_viewer.setdefault(r.viewer, []).append(r)
    for v in run.viewers:
        rows = by_viewer.get(v.name, [])
        w = wins[v.name]
        s = v.summary()
        stop = v.left if v.left is not None else end
        if _join_failed(v, stop):
            out.joins_failed.append(v.name)
        s["join_s"] = None if v.first_frame is None else round(v.first_frame - v.joined, 3)
        # active span after warm-up, minus fault windows
        a0 = max(warm, v.first_frame if v.first_frame is not None else stop)
        span = max(0.0, stop - a0)
        for x, y in w:
            span -= max(0.0, min(y, stop) - max(x, a0))
        n = sum(1 for r in rows if r.t >= a0 and not r.faulted)
        s["active_s"] = round(span, 3)
        s["fps"] = round(n / span, 3) if span >= 5.0 else None
        s["latency_p50_ms"] = pct(
            [
                r.latency_ms
                for r in rows
                if r.latency_ms is not None and not r.faulted and r.t >= warm
            ],
            50,
        )
        # gaps: between frames, and from the last frame to the end (not across a fault)
        times = [r.t for r in rows] + ([stop] if v.first_frame is not None else [])
        gap = 0.0
        for a, b in zip(times, times[1:], strict=False):
            if b < warm or overlaps(a, b, w) or b - a <= gap:
                continue
            gap = b - a
            if gap > out.worst_gap:
                out.worst_gap = gap
                out.worst_gap_at = {"viewer": v.name, "from": round(a, 3), "to": round(b, 3)}
        s["max_gap_s"] = round(gap, 3)
        out.rows.append(s)
    return out


def _join_failed(v: Viewer, stop: float) -> bool:
    if v.first_frame is None:
        return stop - v.joined >= JOIN_TIMEOUT_S or bool(v.error)
    return v.first_frame - v.joined > JOIN_TIMEOUT_S


def growth_figures(polls: list[Poll]) -> dict[str, Any]:
    """Slopes per minute of the server's resources, and RSS growth over the polled span."""
    series = {
        k: [(p.t, p.get(k)) for p in polls if p.get(k) is not None and not p.final] for k in GROWTH
    }
    slopes = {k: slope_per_min(pts) for k, pts in series.items()}
    ts = [p.t for p in polls]
    span_min = (max(ts, default=0) - min(ts, default=0)) / 60
    out: dict[str, Any] = {
        "slopes_per_min": slopes,
        "rss_growth_mb": slopes["rss_mb"] * span_min if slopes["rss_mb"] is not None else None,
    }
    if polls:
        for key in GROWTH:
            out[f"{key}_first"] = polls[0].get(key)
            out[f"{key}_last"] = polls[-1].get(key)
    return out


def check(
    name: str,
    value: float | None,
    limit: float,
    *,
    at_least: bool = False,
    unit: str = "",
    need: bool = True,
    why: str = "",
) -> Check:
    """`value` against `limit`; no data fails a check that needs it."""
    if value is None:
        return Check(name, None, limit, ok=not need, unit=unit, detail="no data")
    ok = bool(value >= limit if at_least else value <= limit)
    return Check(
        name,
        round(float(value), 4),
        limit,
        ok=ok,
        unit=unit,
        op=">=" if at_least else "<=",
        detail=why if why and not ok else None,
    )


# an abuse fault's request that must have met its own refusal, at least once per burst
ABUSE_EXPECTED = [
    ("no token", 401),
    ("forged token", 401),
    ("expired token", 401),
    ("viewer publishes", 403),
    ("viewer ends another's session", 403),
    ("oversize body", 413),
    ("flood", 429),
    ("body never comes", 408),
]


def _refused(answer: dict[str, Any]) -> bool:
    return bool(answer["status"]) and 400 <= answer["status"] < 500


def checks(run: Soak, s: dict[str, Any]) -> list[Check]:
    opts = run.opts
    slopes = s["slopes_per_min"]
    out = [
        check("latency_p50", s["latency_p50_ms"], opts.max_latency_p50_ms, unit="ms"),
        check("latency_p95", s["latency_p95_ms"], opts.max_latency_p95_ms, unit="ms"),
        check("latency_p99", s["latency_p99_ms"], opts.max_latency_p99_ms, unit="ms"),
        check("min_fps", s["fps_min"], opts.min_fps, at_least=True, unit="fps"),
        check("drop_ratio", s["drop_ratio"], opts.max_drop_ratio),
        check("frozen_ratio", s["frozen_ratio"], opts.max_frozen_ratio),
        check(
            "decode_error_ratio", s["decode_error_ratio"], opts.max_decode_error_ratio, need=False
        ),
        check("max_gap", s["max_gap_s"] if run.frames else None, opts.max_gap_s, unit="s"),
        check("joins_failed", len(s["joins_failed"]), 0, unit="viewers"),
        check("rss_slope", slopes["rss_mb"], opts.max_rss_mb_per_min, unit="MB/min"),
        check("rss_growth", s["rss_growth_mb"], opts.max_rss_growth_mb, unit="MB"),
        check(
            "gpu_memory_slope",
            slopes["gpu_mb"],
            opts.max_gpu_mb_per_min,
            unit="MB/min",
            need=False,
        ),  # fmt: skip
        check("fds_slope", slopes["fds"], opts.max_fds_per_min, unit="fds/min"),
        check("peer_connections_slope", slopes["peers"], opts.max_peers_per_min, unit="pcs/min"),
        check(
            "client_lag",
            s["client_lag_max_s"],
            opts.max_client_lag_s,
            unit="s",
            why="the soak client's own event loop stalled: its viewers measured the client, "
            "not the server; run fewer viewers per soak, or the soak on another machine",
        ),
    ]
    malformed = [a for a in run.requests if "abuse" not in a]
    if malformed:
        bad = [a for a in malformed if not _refused(a)]
        detail: Any = bad[:5] if bad else f"{len(malformed)} requests, all 4xx"
        out.append(
            Check("malformed_requests_refused", len(bad), 0, not bad, "not 4xx", "<=", detail)
        )
    abuse = [a for a in run.requests if "abuse" in a]
    if abuse:
        bad = [a for a in abuse if not _refused(a)]
        seen = {(a["abuse"], a["status"]) for a in abuse}
        missing = [
            f"{label}: no {status} (got {sorted(str(s) for lb, s in seen if lb == label)})"
            for label, status in ABUSE_EXPECTED
            if (label, status) not in seen
        ]
        detail = (bad[:5] + missing) if bad or missing else f"{len(abuse)} requests, all refused"
        ok = not bad and not missing
        out.append(
            Check("abuse_refused", len(bad) + len(missing), 0, ok, "not refused", "<=", detail)
        )
    out.append(
        Check("server_answered_polls", run.bad_polls, 0, run.bad_polls == 0, "failed polls", "<=")
    )
    if run.error:
        out.append(Check("completed", None, None, False, detail=run.error))
    return out


def av_checks(run: Soak, fig: dict[str, Any]) -> list[Check]:
    """The offset a viewer sees (|offset| p95) and its drift; skipped, not failed, when the
    server has no beep to pair (no audio, or a game's)."""
    opts = run.opts
    src = fig["source"]
    limits = (
        ("av_offset_p95", opts.max_av_offset_ms, "ms"),
        ("av_drift", opts.max_av_drift_ms_per_min, "ms/min"),
    )
    if src != "beep":
        why = (
            "skipped: the server has no audio"
            if src == "none"
            else f"skipped: {src} audio has no beep to pair with a flash ([audio] source = beep)"
        )
        return [Check(name, None, limit, True, unit, detail=why) for name, limit, unit in limits]
    drift = fig.get("drift_ms_per_min")
    out = [
        check(
            "av_offset_p95",
            fig.get("abs_p95_ms"),
            opts.max_av_offset_ms,
            unit="ms",
            why="the sound and the picture play further apart than lip sync allows",
        ),
        check(
            "av_drift",
            None if drift is None else abs(drift),
            opts.max_av_drift_ms_per_min,
            unit="ms/min",
            why="the offset drifts: the audio and video clocks run apart",
        ),
    ]
    for c in out:
        if c.value is None:  # say why there is nothing to judge
            c.detail = f"{fig['pairs']} beep/flash pairs; {fig.get('error') or 'no error'}"
    return out


def analyse(run: Soak, started: float) -> dict[str, Any]:
    """The report: every figure, every check, and what was recorded."""
    opts = run.opts
    end = run.now() if run.t0 else 0.0
    warm = opts.warmup_s
    wins = {v.name: fault_windows(run, v.name) for v in run.viewers}
    for row in run.frames:
        row.faulted = inside(row.t, wins.get(row.viewer, []))
        row.t_wall = None
    judged = [r for r in run.frames if r.t >= warm and not r.faulted and r.viewer != "chromium"]
    g = opts.grace_s
    spans = [
        (f.t0, f.t1 + g) for f in run.faults if f.windowed and f.kind in ("lossy", "publisher")
    ]
    dec_errors = [run.rel(t) for t in run.decode_errors.times]
    dec_judged = [t for t in dec_errors if t >= warm and not inside(t, spans)]
    viewers = viewer_figures(run, wins, end)
    fps_values = [s["fps"] for s in viewers.rows if s["fps"] is not None]
    polls = [p for p in run.polls if not p.error and p.t >= warm]
    lags = [lag for t, lag in run.lags if t >= warm]
    summary: dict[str, Any] = {
        "duration_s": round(end, 3),
        "frames": len(run.frames),
        "frames_judged": len(judged),
        **latency_figures(judged),
        "fps_min": min(fps_values, default=None),
        "fps_mean": float(np.mean(fps_values)) if fps_values else None,
        **continuity_figures(judged, opts.freeze_ms),
        "unreadable": sum(v.unreadable for v in run.viewers),
        "misread": sum(v.misread for v in run.viewers),
        # lost packets the viewers gave up on (then asked for a keyframe), see jitter.py
        "jitter_skips": sum(v.jitter.skips for v in run.viewers if v.jitter is not None),
        "decode_errors": len(dec_errors),
        "decode_errors_judged": len(dec_judged),
        "decode_error_ratio": len(dec_judged) / len(judged) if judged else None,
        "max_gap_s": viewers.worst_gap,
        "max_gap_at": viewers.worst_gap_at,
        **growth_figures(polls),
        "polls": len(run.polls),
        "polls_failed": run.bad_polls,
        "viewers_total": len(run.viewers),
        "joins_failed": viewers.joins_failed,
        "faults": {k: sum(1 for f in run.faults if f.kind == k and not f.skipped) for k in FAULTS},
        "client_lag_max_s": max(lags, default=0.0) if run.t0 else None,
        "client_lag_over_0_25_s": sum(1 for lag in lags if lag > 0.25),
    }
    av_fig = av.figures(av.audio_source(run.health), run.av)
    av_pairs = av_fig.pop("series", [])
    summary["av_offset"] = av_fig
    results = checks(run, summary) + av_checks(run, av_fig)
    more, links = bandwidth_checks(run, end)
    results += more
    summary["bandwidth"] = links
    passed = all(c.ok for c in results)
    return {
        "kind": "soak",
        "version": 1,
        "started": started,
        "url": run.base,
        "server": {
            "log": str(run.server.log_path) if run.server else None,
            "leak_hook": run.leak,
            "health": run.health,
        },
        "settings": opts.model_dump(),
        "duration_s": summary["duration_s"],
        # the latency limits under the names stream.tools.plots draws
        "thresholds": {
            "p50_ms": opts.max_latency_p50_ms,
            "p95_ms": opts.max_latency_p95_ms,
            "p99_ms": opts.max_latency_p99_ms,
        },
        "limits": {
            k: v
            for k, v in opts.model_dump().items()
            if k.startswith(("max_", "min_")) or k in ("freeze_ms", "warmup_s", "grace_s")
        },
        "summary": summary,
        "checks": [c.as_json() for c in results],
        "passed": passed,
        "verdict": {
            "passed": passed,
            "failed": [c.name for c in results if not c.ok],
            "skipped": [c.name for c in results if str(c.detail).startswith("skipped")],
        },
        "error": run.error,
        "stopped_by": run.stopped_by or None,  # a signal that ended the run early
        "viewers": viewers.rows,
        "faults": [f.as_json() for f in run.faults],
        "requests": run.requests,
        "decode_errors": [round(t, 3) for t in dec_errors],
        "browser": run.browser,
        "av_pairs": av_pairs,  # (t, offset_ms, arrival_ms) of each beep with its flash
        "polls": [p.as_json() for p in run.polls],
        "frames": [r.as_json() for r in run.frames],
    }

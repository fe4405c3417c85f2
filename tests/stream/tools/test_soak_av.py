"""The soak measures and judges audio-video sync (issue 26): with `[audio] source = "beep"`
one light viewer (stream/tools/avsync's) pairs each beep with its flash through the run; the
report carries `av_offset` (p50, p95, |p95|, drift by Theil-Sen) and the verdict the
`av_offset_p95` and `av_drift` checks, skipped (not failed) on a server without audio."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from stream.config import override
from stream.tools import avsync
from stream.tools.soak import Soak, analyse, format_verdict, settings, soak, write_plots
from stream.tools.soak.av import AvWatch

NTP0 = 1_000 << 32  # both tracks' sender report: NTP 1000 s at RTP 0


def _watch(offsets_ms: list[float], mono0: float) -> AvWatch:
    """One flash a second and a beep `offsets_ms[k]` after it, on the sender's clock (as the
    RTCP sender reports map them), arriving at soak time k."""
    cap = avsync.Capture()
    for track in (cap.video, cap.audio):
        track.reports.append((0.0, NTP0, 0))
        track.mapper = SimpleNamespace(_origin=0)
    for k, off in enumerate(offsets_ms):
        cap.flashes.append((mono0 + k, k * 90_000))
        cap.onsets.append((mono0 + k + 0.05, round((k + off / 1000) * 48_000)))
    return AvWatch("beep", mono0, cap)


def _run(health: dict, watch: AvWatch | None, **limits: float) -> Soak:
    run = Soak(override(settings.load(), dict(limits), "soak"))
    run.t0 = time.time() - 150.0
    run.health = health
    run.av = watch
    return run


def _checks(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"] if c["name"].startswith("av_")}


def test_the_verdict_judges_the_offset_and_its_drift_from_the_pairs():
    # 10 ms late, drifting 3 ms a minute over two minutes: the pairs go through avsync's own
    # sender-report mapping and pairing, the drift is the least-squares slope per minute
    offsets = [10.0 + 3.0 * k / 60 for k in range(120)]
    run = _run({"audio": {"source": "beep"}}, _watch(offsets, 500.0))
    report = analyse(run, run.t0)
    fig = report["summary"]["av_offset"]
    assert fig["pairs"] == 120 and fig["beeps"] == 120
    assert fig["drift_ms_per_min"] == pytest.approx(3.0, abs=0.02)
    assert fig["p50_ms"] == pytest.approx(13.0, abs=0.1)
    assert fig["abs_p95_ms"] == pytest.approx(15.65, abs=0.1)
    assert report["av_pairs"][5]["t"] == pytest.approx(5.05, abs=1e-3)  # soak time
    checks = _checks(report)
    assert checks["av_offset_p95"]["ok"] and checks["av_offset_p95"]["limit"] == 40.0
    assert not checks["av_drift"]["ok"] and "av_drift" in report["verdict"]["failed"]
    assert "drift 3.00 ms/min" in format_verdict(report)
    # too far apart: the offset check fails; a slower drift passes its own limit
    late = _run(
        {"audio": {"source": "beep"}},
        _watch([60.0] * 30, 500.0),
        max_av_drift_ms_per_min=5.0,
    )
    checks = _checks(analyse(late, late.t0))
    assert not checks["av_offset_p95"]["ok"] and checks["av_offset_p95"]["value"] == 60.0
    assert checks["av_drift"]["ok"]


def test_a_burst_of_late_frames_is_not_a_drift():
    """Five minutes steady at +10 ms, but in the fourth a busy host shows 12 flashes 250 ms
    late (the sound 240 ms early): least squares tilts by -6 ms/min, a failed drift on a
    clock that did not move; the Theil-Sen line stays flat (the late frames are the p95
    check's business: 4% of the pairs here)."""
    offsets = [10.0] * 300
    for k in range(200, 260, 5):
        offsets[k] = -240.0
    run = _run({"audio": {"source": "beep"}}, _watch(offsets, 500.0))
    report = analyse(run, run.t0)
    fig = report["summary"]["av_offset"]
    assert fig["drift_ms_per_min"] == pytest.approx(0.0, abs=0.05), fig
    assert fig["drift_lsq_ms_per_min"] < -5.0, fig  # what least squares made of it
    assert fig["drift_at0_ms"] == pytest.approx(10.0, abs=0.5), fig
    checks = _checks(report)
    assert checks["av_drift"]["ok"], checks


def test_the_sync_checks_are_skipped_not_failed_without_beep_audio():
    for health, why in (({}, "no audio"), ({"audio": {"source": "pulse"}}, "no beep")):
        report = analyse(run := _run(health, None), run.t0)
        checks = _checks(report)
        assert set(checks) == {"av_offset_p95", "av_drift"}
        for c in checks.values():
            assert c["ok"] and c["value"] is None and why in c["detail"], c
        assert set(report["verdict"]["skipped"]) == {"av_offset_p95", "av_drift"}
        assert "skip av_offset_p95" in format_verdict(report)


def test_a_beep_server_without_pairs_fails_the_sync_checks():
    report = analyse(run := _run({"audio": {"source": "beep"}}, _watch([], 0.0)), run.t0)
    checks = _checks(report)
    assert not checks["av_offset_p95"]["ok"] and not checks["av_drift"]["ok"]
    assert "0 beep/flash pairs" in checks["av_drift"]["detail"]


SERVE = """\
[source]
width = 160
height = 90
fps = 30.0

[model]
mode = "bilinear"
compare = false

[encoder]
codecs = ["vp8"]
bitrate = 400000

[audio]
source = "beep"
"""


@pytest.mark.soak
@pytest.mark.gpu
@pytest.mark.timeout(150)
async def test_a_soak_of_a_beep_server_measures_and_judges_the_av_offset(tmp_path: Path, artifacts):
    serve = tmp_path / "serve.toml"
    serve.write_text(SERVE)
    opts = override(
        settings.load(),
        {
            "serve_config": str(serve),
            "viewers": 3,
            "duration_s": 40.0,
            "warmup_s": 8.0,
            "churn_s": 0.0,
            "faults": [],
            "fault_every_s": 0.0,
            "report": str(tmp_path / "soak.json"),
            # a 2-core machine shared with other tests: a frame the encoder gets late is
            # shown late, so the offset's tail is the machine's as much as the server's. 200
            # ms still tells sync (tens of ms) from none (the sound a whole video latency
            # early or late); the 40 ms goal is the hour-long soak's (configs/soak.toml).
            # Over 30 s a few late pairs tilt the fitted line by tens of ms/min: the drift
            # limit here only catches clocks running apart
            "max_av_offset_ms": 200.0,
            "max_av_drift_ms_per_min": 300.0,
            # the other checks are the CI soak's business (test_soak.py)
            "min_fps": 15.0,
            "max_latency_p50_ms": 300.0,
            "max_latency_p95_ms": 800.0,
            "max_latency_p99_ms": 1500.0,
            "max_drop_ratio": 0.2,
            "max_frozen_ratio": 0.1,
            "max_rss_mb_per_min": 60.0,
            "max_fds_per_min": 20.0,
            "max_peers_per_min": 4.0,
        },
        "soak",
    )
    report = await soak(opts)
    pngs = write_plots(report, artifacts / "soak-av.json", artifacts)
    print(format_verdict(report))
    fig = report["summary"]["av_offset"]
    print("AV_OFFSET", fig)
    assert not report["error"], report["error"]
    assert report["server"]["health"]["audio"]["source"] == "beep"
    assert fig["pairs"] > 0, fig
    checks = _checks(report)
    assert checks["av_offset_p95"]["ok"], (checks, fig)
    assert checks["av_drift"]["value"] is not None, (checks, fig)
    assert not report["verdict"]["skipped"]
    assert any(str(p).endswith(".av_offset.png") for p in pngs), pngs

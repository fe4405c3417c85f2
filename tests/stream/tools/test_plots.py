"""Pipeline timeline and soak latency plots: PNGs from JSON, and `python -m stream plot`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream.__main__ import main
from stream.tools import plots
from tests.infer.tools.test_bench_plots import assert_png, tiny_upscaler


def _timeline(n: int, overlap: bool, t0: float = 100.0) -> list[dict]:
    """FrameTiming rows as stream.stats writes them: 2 ms upload, 1 ms submit, 6 ms GPU,
    1 ms readback; with overlap the next frame is uploaded while this one computes."""
    rows, t = [], t0
    for i in range(n):
        t_sub = t + 0.003
        t_done = t_sub + 0.007
        rows.append(
            {
                "index": i,
                "pts": i,
                "wait_ms": 0.0,
                "upload_ms": 2.0,
                "submit_ms": 1.0,
                "gpu_ms": 6.0,
                "readback_ms": 1.0,
                "total_ms": (t_done - t) * 1000,
                "t_start": t,
                "t_submitted": t_sub,
                "t_done": t_done,
            }
        )
        t = t_sub if overlap else t_done
    return rows


def _soak(n: int = 400, thresholds: dict | None = None) -> dict:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        dropped = i % 97 == 5
        lat = None if dropped else float(30 + 5 * rng.standard_normal())
        frames.append({"t": i / 30, "latency_ms": lat, "viewer": f"v{i % 3}", "dropped": dropped})
    return {"kind": "soak", "frames": frames, "thresholds": thresholds or {"p95_ms": 80}}


def test_stage_bars_reconstruct_the_frame():
    row = _timeline(1, overlap=False)[0]
    bars = {name: (start, dur) for name, start, dur in plots.stage_bars(row)}
    assert list(bars) == ["upload", "submit", "in flight", "readback", "gpu"]  # no wait
    assert bars["upload"][0] == pytest.approx(row["t_start"])
    assert bars["submit"][0] + bars["submit"][1] == pytest.approx(row["t_submitted"])
    assert bars["readback"][0] + bars["readback"][1] == pytest.approx(row["t_done"])
    assert bars["in flight"][1] == pytest.approx(0.006)
    assert bars["gpu"] == (pytest.approx(row["t_submitted"]), pytest.approx(0.006))


def test_timeline_plot_from_a_pipeline_json(tmp_path: Path):
    result = {
        "frames": 40,
        "input": [64, 36],
        "output": [128, 72],
        "slots": 2,
        "sequential_fps": 100.0,
        "pipelined_fps": 140.0,
        "speedup": 1.4,
        "timeline": _timeline(40, overlap=True),
        "timeline_sequential": _timeline(40, overlap=False),
    }  # no "kind": older bench-pipeline JSON is recognised by its keys
    src = tmp_path / "pipe.json"
    src.write_text(json.dumps(result))
    assert plots.kind_of(result) == "pipeline"
    (png,) = plots.plot_result(src)
    assert png == tmp_path / "pipe.timeline.png"
    assert_png(png)


def test_soak_plots_and_report(tmp_path: Path, capsys):
    src = tmp_path / "soak.json"
    src.write_text(json.dumps(_soak(thresholds={"p50_ms": 50, "p95_ms": 80, "p99_ms": 120})))
    report = tmp_path / "report.md"
    assert main(["plot", str(src), "--report", str(report)]) == 0
    assert "latency_hist.png" in capsys.readouterr().out
    assert_png(tmp_path / "soak.latency_hist.png")
    assert_png(tmp_path / "soak.latency_time.png")
    page = report.read_text()
    assert "![Latency histogram](soak.latency_hist.png)" in page
    assert "threshold p99_ms = 120" in page
    assert "dropped" in page


def test_soak_schema_minimal_and_errors(tmp_path: Path):
    minimal = {"kind": "soak", "frames": [{"t": i, "latency_ms": 10.0 + i} for i in range(30)]}
    pngs = plots.plot_result(minimal, tmp_path)
    assert [p.name for p in pngs] == ["result.latency_hist.png", "result.latency_time.png"]
    for p in pngs:
        assert_png(p)
    with pytest.raises(ValueError, match="no frame latencies"):
        plots.plot_result({"kind": "soak", "frames": [{"t": 0, "latency_ms": None}]}, tmp_path)
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"kind": "mystery"}))
    assert main(["plot", str(bad)]) == 2


@pytest.mark.gpu
def test_bench_pipeline_json_to_timeline(tmp_path: Path, capsys):
    model = tiny_upscaler(tmp_path / "tiny.onnx")
    out = tmp_path / "pipe.json"
    argv = ["bench-pipeline", "--model", str(model), "--size", "48x32", "--frames", "6"]
    assert main([*argv, "--rounds", "1", "--json", str(out), "--plot"]) == 0
    print(capsys.readouterr().out)
    result = json.loads(out.read_text())
    assert result["kind"] == "pipeline"
    assert len(result["timeline"]) == 6 and len(result["timeline_sequential"]) == 6
    # lavapipe has timestamp queries: the GPU's idle time per frame is reported for both,
    # and cannot be negative (GPU time is part of the wall time it is taken from)
    for key in ("gpu_idle_ms_sequential", "gpu_idle_ms_pipelined"):
        assert result[key] is not None and result[key] > -0.5, key
    assert_png(tmp_path / "pipe.timeline.png")

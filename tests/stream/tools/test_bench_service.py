"""`python -m stream bench`: one size through the in-process pipeline comparison and the live
service (a child `serve` process, one aiortc viewer), with figures from that run and a plot."""

from __future__ import annotations

import json

import pytest

from stream.tools.bench.service import main

pytestmark = [pytest.mark.soak, pytest.mark.gpu]


def test_service_bench_measures_one_size_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(
        [
            "--sizes", "160x90", "--modes", "bilinear", "--fps", "15", "--seconds", "6",
            "--warmup", "4", "--frames", "8", "--rounds", "1", "--workdir", str(tmp_path / "w"),
            "--json", str(out), "--plot",
        ]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["kind"] == "service-bench"
    (row,) = result["rows"]
    assert row["size"] == "160x90" and row["mode"] == "bilinear"
    pipe, svc = row["pipeline"], row["service"]
    assert pipe["output"] == [320, 180] and svc["output"] == [320, 180]
    assert pipe["sequential_fps"] > 0 and pipe["pipelined_fps"] > 0
    assert svc["viewer_fps_mean"] > 5
    assert svc["latency_samples"] > 10
    assert 0 < svc["latency_p50_ms"] <= svc["latency_p95_ms"]
    assert svc["server_stages_ms"]["total_ms"] > 0
    assert (tmp_path / "bench.service.png").stat().st_size > 10_000
    assert "glass-to-glass p50" in capsys.readouterr().out


def test_service_bench_refuses_an_unknown_mode(capsys):
    assert main(["--modes", "sharpen", "--sizes", "64x36"]) == 2
    assert "mode must be one of" in capsys.readouterr().out

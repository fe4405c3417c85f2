"""The rooms capacity bench (issue 31): `python -m stream bench-capacity` as a user runs it,
at a tiny size with two rooms: a real `serve` child, real aiortc viewers, real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a serve child with two rooms and two WebRTC viewers: ~30 s


def test_capacity_bench_two_rooms_writes_rows_and_plot(tmp_path):
    out = tmp_path / "capacity.json"
    cmd = [sys.executable, "-m", "stream", "bench-capacity", "--sizes", "128x72"]
    cmd += ["--modes", "bilinear", "--rooms", "2", "--seconds", "2", "--warmup", "1"]
    cmd += ["--json", str(out), "--plot"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["kind"] == "capacity-bench" and result["source_fps"] == 30.0
    assert isinstance(result["loadavg_1m"], float)
    (row,) = result["rows"]
    assert "error" not in row, row
    assert (row["size"], row["mode"], row["rooms"]) == ("128x72", "bilinear", 2)
    assert row["output"] == [256, 144]  # bilinear x2 of the room's own source
    # both rooms delivered frames to their own viewer (not one room twice)
    assert len(row["fps_per_room"]) == 2 and min(row["fps_per_room"]) > 0, row
    assert row["cpu_ms_per_frame"] > 0 and row["cpu_s"] > 0
    assert {r["name"] for r in row["api_rooms"]["rooms"]} == {"r0", "r1"}
    assert out.with_suffix(".png").stat().st_size > 1000

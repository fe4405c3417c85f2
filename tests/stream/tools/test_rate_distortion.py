"""The rate-distortion bench (issue 29): end to end through the CLI, every method x bitrate x
content scored, and a sanity check that no bug can pass by accident."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from stream.__main__ import main
from stream.tools.bench.clips import CLIPS
from stream.tools.bench.rate_distortion import METHODS, psnr, ssim

RATES = (0.05, 2.0)


def test_ssim_and_psnr_order_noise() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 255, (40, 50))
    small = a + rng.normal(0, 2, a.shape)
    big = a + rng.normal(0, 20, a.shape)
    assert ssim(a, a) == pytest.approx(1.0)
    assert psnr(a, a) == 100.0
    assert 1.0 > ssim(a, small) > ssim(a, big) > 0.0
    assert psnr(a, small) > psnr(a, big) + 15


def test_clips_are_deterministic_and_move() -> None:
    for make in CLIPS.values():
        r1, r2 = make(64, 36, 30), make(64, 36, 30)
        f0, f1 = r1(0), r1(1)
        assert f0.shape == (36, 64, 3) and f0.dtype == np.uint8
        assert np.array_equal(f1, r2(1))
        assert np.abs(f0.astype(int) - f1.astype(int)).mean() > 1.0  # game-like motion


@pytest.mark.gpu
@pytest.mark.slow  # about 25 s on lavapipe: a model compile and 36 encodes
def test_bench_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rd.json"
    rc = main(
        ["bench", "--rate-distortion", "--size", "64x36", "--frames", "4",
         "--bitrates", ",".join(map(str, RATES)), "--json", str(out), "--plot"]
    )  # fmt: skip
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["kind"] == "rate-distortion"
    rows = {(r["content"], r["method"], r["mbps"]): r for r in result["rows"]}
    contents = ("scene", *CLIPS)
    for c in contents:
        for m in METHODS:
            for b in RATES:
                r = rows[(c, m, b)]
                assert math.isfinite(r["psnr"]) and 5 < r["psnr"] < 100, r
                assert 0 < r["ssim"] <= 1 and len(r["psnr_frames"]) == 4
                assert r["kbps"] > 0
        # the full-size encode at the top rate beats half size + bilinear at the bottom one:
        # the ground truth itself at ~40x the bits; wrong frames or a misaligned scale fail it
        assert rows[(c, "full", RATES[-1])]["psnr"] > rows[(c, "bilinear", RATES[0])]["psnr"] + 3
        assert rows[(c, "full", RATES[-1])]["ssim"] > rows[(c, "bilinear", RATES[0])]["ssim"]
    for m in ("server-cnn", "viewer-cnn"):
        assert result["methods"][m]["added_ms"] > 0
    assert (tmp_path / "rd.rd.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "| scene | 0.05 |" in printed and "viewer-cnn" in printed

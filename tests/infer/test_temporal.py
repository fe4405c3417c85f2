"""Temporal stability: sequences with exactly known motion, the warping error and flicker
measured on them, the shifted patch pairs of the temporal training term, and the gate's
temporal checks."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from infer.training.config import load_config
from infer.training.dataset import Degradation, resize_baseline
from infer.training.export import DeployGateError, check_gate
from infer.training.pairs import PairPool
from infer.training.sequences import held_out_sequences, warp
from infer.training.temporal import flicker, score_sequences, warping_error

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def seqs():
    return held_out_sequences(Degradation("upscale"), 4, 5, (72, 120), seed=11)


def test_the_motion_is_exact_where_it_is_valid(seqs):
    for s in seqs:
        assert len(s.targets) == len(s.inputs) == 5 and len(s.motion) == len(s.valid) == 4
        assert s.inputs[0].shape == (36, 60, 3)
        for t, (m, v) in enumerate(zip(s.motion, s.valid, strict=True)):
            moved = warp(s.targets[t], m)
            assert np.array_equal(moved[v], s.targets[t + 1][v])
            assert v.mean() > 0.8  # occlusions and entering pixels are a small part
    # the set covers both kinds of scene and both filters
    assert any("still" in s.how for s in seqs) and any("scrolls" in s.how for s in seqs)
    assert {s.how.split(",")[0] for s in seqs} == {"x2 bicubic", "x2 area"}
    assert any(m.any() for s in seqs for m in s.motion)


def test_a_perfect_upscaler_scores_zero_and_a_flickering_one_does_not(seqs):
    for s in seqs:
        assert warping_error(s.targets, s) == [0.0] * 4
        assert flicker(s.targets, s) == [0.0] * 4
        # the truth, brightened by 3 levels on every other frame: a flickering upscaler
        flick = [
            np.clip(f.astype(int) + 3 * (t % 2), 0, 255).astype(np.uint8)
            for t, f in enumerate(s.targets)
        ]
        w = warping_error(flick, s)
        assert all(2.5 < e <= 3.0 for e in w), w  # RMS of a 3-level step, a few clipped
        assert all(2.5 < f <= 3.0 for f in flicker(flick, s))
        # a constant error does not flicker: the same brightening on every frame
        steady = [np.clip(f.astype(int) + 3, 0, 255).astype(np.uint8) for f in s.targets]
        assert max(flicker(steady, s)) == 0.0


def test_score_sequences_over_classic_upscalers(seqs):
    lookup = {id(x): s.targets[t] for s in seqs for t, x in enumerate(s.inputs)}
    ups = {
        "bicubic": lambda x: resize_baseline(x, (2 * x.shape[0], 2 * x.shape[1]), "bicubic"),
        "truth": lambda x: lookup[id(x)],
    }
    ts = score_sequences(ups, seqs)
    assert ts.mean_warp("truth") == 0.0 and ts.mean_flicker("truth") == 0.0
    assert ts.mean_psnr("truth") == float("inf")
    assert ts.mean_warp("bicubic") > 0.5  # half-pixel steps of the input: it shimmers
    assert len(ts.warp["bicubic"]) == 4 * 4 and len(ts.psnr["bicubic"]) == 4


def test_pairs_are_consecutive_frames_with_their_motion():
    pairs = PairPool(Degradation("upscale"), 6, (96, 96), seed=3)
    xa, ya, xb, yb, source, mask = pairs.batch(np.random.default_rng(0), 32, 40, margin=4)
    assert xa.shape == xb.shape == (32, 3, 20, 20) and ya.shape == yb.shape == (32, 3, 40, 40)
    assert source.shape == mask.shape == (32, 40 * 40)
    for a, b, src, weight in zip(ya, yb, source, mask, strict=True):
        ok = weight > 0
        # frame t+1 is frame t moved by the motion wherever the mask holds (flips, turns too)
        np.testing.assert_array_equal(b.reshape(3, -1)[:, ok], a.reshape(3, -1)[:, src[ok]])
    assert 0.3 < (mask > 0).mean() < 0.8  # the margin and what moved in or out leave the rest
    assert not np.array_equal(src, np.tile(np.arange(1600), (32, 1)))  # things move


@pytest.mark.skipif(not HAS_TORCH, reason="needs the train extra (torch)")
def test_warp_consistency_is_zero_for_an_upscaler_that_moves_with_the_content():
    import torch

    from infer.training.train import warp_consistency

    pairs = PairPool(Degradation("upscale"), 4, (96, 96), seed=3)
    _, ya, _, yb, source, mask = pairs.batch(np.random.default_rng(1), 8, 40, margin=4)
    ta, tb = torch.from_numpy(ya), torch.from_numpy(yb)
    assert float(warp_consistency(ta, tb, source, mask)) == 0.0  # the truth moves with it
    assert float(warp_consistency(ta, tb + 0.1, source, mask)) == pytest.approx(0.01)


def test_the_gate_checks_the_methods_to_beat_and_the_models_to_compare_with():
    cfg = load_config(
        overrides={
            "gate": {
                "beat": ["edge"],
                "min_gain_over_compare_db": 0.5,
                "max_flicker_vs_bicubic": 1.5,
            }
        }
    ).gate
    psnr = {"bicubic": 23.0, "edge": 23.1, "upscale.onnx": 25.9, "model": 26.5}
    warp = {"bicubic": 5.4, "edge": 6.5, "upscale.onnx": 7.2, "model": 5.0}
    flick = {"bicubic": 0.18, "edge": 0.27, "upscale.onnx": 0.35, "model": 0.2}
    kw = {"psnr": psnr, "warp": warp, "flicker": flick, "compare": ("upscale.onnx",)}
    check_gate(None, 3.5, "bicubic", cfg, **kw)  # passes
    with pytest.raises(DeployGateError) as e:
        check_gate(None, 3.5, "bicubic", cfg, **{**kw, "warp": {**warp, "model": 6.6}})
    assert "warping error 6.600 on the held-out sequences is not below edge's 6.500" in str(e)
    with pytest.raises(DeployGateError) as e:
        check_gate(None, 3.5, "bicubic", cfg, **{**kw, "psnr": {**psnr, "model": 26.2}})
    assert "gain over upscale.onnx is +0.30 dB, below the required +0.50 dB" in str(e)
    with pytest.raises(DeployGateError, match=r"flicker 0.300 on still pixels is 1.67x bicubic"):
        check_gate(None, 3.5, "bicubic", cfg, **{**kw, "flicker": {**flick, "model": 0.3}})
    with pytest.raises(DeployGateError, match="no warping error measured for edge"):
        check_gate(None, 3.5, "bicubic", cfg, **{**kw, "warp": None, "flicker": None})

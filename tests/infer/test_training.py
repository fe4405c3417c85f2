"""The training pipeline: data -> train -> export -> engine parity -> evaluation, kept tiny."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from infer.training.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs the train extra (torch)")


def tiny(tmp_path, **extra) -> dict:
    """Overrides for a run of a few seconds: tiny frames, patches, model and budget."""
    over = {
        "name": "tiny",
        "seed": 7,
        "data": {"frames": 8, "frame_size": [48, 48], "patch": 16, "batch": 4},
        "model": {"arch": "espcn", "features": 8, "mid_features": 8, "activation": "tanh"},
        "train": {"steps": 24, "seconds": 0.0, "log_every": 4, "checkpoint_every": 12},
        "eval": {
            "frames": 2,
            "size": [40, 64],
            "bench_size": [17, 23],
            "bench_runs": 1,
            "figure": importlib.util.find_spec("matplotlib") is not None,
            "sequences": 2,
            "sequence_frames": 3,
        },
        "gate": {"min_gain_db": -100.0},  # a 24-step model is not expected to beat bicubic
        "output": {"dir": str(tmp_path / "run"), "deploy_dir": ""},
    }
    for k, v in extra.items():
        if isinstance(v, dict):
            over.setdefault(k, {}).update(v)
        else:
            over[k] = v
    return over


# ---- config validation (no torch needed) -----------------------------------------------


def test_unknown_key_is_refused_and_named(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('name = "x"\n[train]\nsteps = 5\nlearning_rate = 0.1\n')
    with pytest.raises(ConfigError, match=r"train\.learning_rate"):
        load_config(p)
    p.write_text("colour = 3\n")
    with pytest.raises(ConfigError, match="'colour'"):
        load_config(p)
    p.write_text("[modle]\narch = 'espcn'\n")
    with pytest.raises(ConfigError, match="'modle'"):
        load_config(p)


def test_bad_values_are_refused_and_named(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[train]\nsteps = "many"\n')
    with pytest.raises(ConfigError, match=r"train\.steps"):
        load_config(p)
    p.write_text('task = "denoise"\n[model]\narch = "espcn"\n')
    with pytest.raises(ConfigError, match="does not fit"):
        load_config(p)


@pytest.mark.parametrize(
    "name", ["train-upscale", "train-upscale-hq", "train-upscale-lite", "train-denoise"]
)
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "configs" / f"{name}.toml")
    assert cfg.output.deploy_dir == "infer/models"
    assert cfg.eval.seed != cfg.seed


# ---- data ------------------------------------------------------------------------------


def test_frames_are_seeded_and_held_out_differs():
    from infer.training.dataset import Degradation, PatchPool, held_out

    for task in ("upscale", "denoise"):
        deg = Degradation(task)
        a = PatchPool(deg, 3, (32, 48), seed=1)
        b = PatchPool(deg, 3, (32, 48), seed=1)
        assert all(np.array_equal(x, y) for x, y in zip(a.inputs, b.inputs, strict=True))
        assert all(np.array_equal(x, y) for x, y in zip(a.targets, b.targets, strict=True))
        ev = held_out(deg, 2, (32, 48), seed=2)
        assert not np.array_equal(ev[0].target, a.targets[0])
        x, y = a.batch(np.random.default_rng(0), 2, 16)
        s = deg.scale
        assert x.shape == (2, 3, 16 // s, 16 // s) and y.shape == (2, 3, 16, 16)
        assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0


def test_ssim_and_psnr_sanity():
    from infer.training.evaluate import psnr, ssim

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    assert psnr(a, a) == float("inf")
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert 0.0 < ssim(a, b) < 1.0 and 20.0 < psnr(a, b) < 35.0


# ---- training --------------------------------------------------------------------------


@needs_torch
def test_param_and_flop_counts():
    from infer.training.models import build_model, count_flops, count_params

    m = build_model("espcn", features=32, mid_features=32, activation="relu", base="bilinear")
    convs = (3 * 32 * 25 + 32) + (32 * 32 * 9 + 32) + (32 * 12 * 9 + 12)
    assert count_params(m) == convs
    f = count_flops(m)
    macs_per_px = 3 * 32 * 25 + 32 * 32 * 9 + 32 * 12 * 9
    assert f["conv"] == pytest.approx((2 * macs_per_px + 32 + 32 + 12) * 960 * 540, rel=1e-9)
    assert f["total"] > f["conv"]


@needs_torch
@pytest.mark.train
def test_same_seed_and_budget_reproduce(tmp_path):
    from infer.training.dataset import held_out
    from infer.training.evaluate import score
    from infer.training.export import export_onnx
    from infer.training.train import degradation, train

    runs = []
    for k in range(2):
        cfg = load_config(overrides=tiny(tmp_path, output={"dir": str(tmp_path / f"r{k}")}))
        result = train(cfg, progress=False)
        path = export_onnx(result.model, tmp_path / f"r{k}" / "m.onnx")
        frames = held_out(degradation(cfg), 2, (40, 64), cfg.eval.seed)
        s = score(cfg.task, path, frames)
        runs.append((result.losses, {m: s.mean_psnr(m) for m in s.methods}, s.gain_db))
    (l0, p0, g0), (l1, p1, g1) = runs
    assert [s for s, _ in l0] == [s for s, _ in l1]
    np.testing.assert_allclose([v for _, v in l0], [v for _, v in l1], rtol=0, atol=1e-6)
    for m in p0:
        assert abs(p0[m] - p1[m]) <= 1e-6
    assert abs(g0 - g1) <= 1e-6


@needs_torch
@pytest.mark.train
def test_resume_continues_from_checkpoint(tmp_path):
    from infer.training.train import train

    cfg = load_config(overrides=tiny(tmp_path, train={"steps": 8, "checkpoint_every": 4}))
    first = train(cfg, progress=False)
    assert first.steps == 8
    cfg = load_config(overrides=tiny(tmp_path, train={"steps": 12, "checkpoint_every": 4}))
    again = train(cfg, resume=True, progress=False)
    assert again.resumed_from == 8 and again.steps == 12
    assert [s for s, _ in again.losses][: len(first.losses)] == [s for s, _ in first.losses]


@needs_torch
@pytest.mark.train
@pytest.mark.gpu
@pytest.mark.timeout(120)
@pytest.mark.parametrize("task", ["upscale", "denoise"])
def test_pipeline_end_to_end(tmp_path, task):
    from infer.training.cli import run_pipeline

    extra = {"task": task}
    if task == "denoise":
        extra["model"] = {"arch": "denoise", "features": 8, "num_conv": 3, "activation": "relu"}
    cfg = load_config(overrides=tiny(tmp_path, **extra))
    summary = run_pipeline(cfg, progress=False)
    run = tmp_path / "run"
    for f in ("tiny.onnx", "tiny.md", "report.md", "summary.json", "checkpoint.pt"):
        assert (run / f).is_file(), f
    assert summary["parity_rel"] <= 1e-4
    assert summary["gate"] == "passed"
    assert np.isfinite(list(summary["psnr"].values())).all()
    assert "engine_ms" in summary["speed"], summary["speed"]
    card = (run / "tiny.md").read_text()
    assert "MIT" in card and "parameters" in card
    saved = json.loads((run / "summary.json").read_text())
    assert saved["steps"] == 24
    if task == "upscale":  # the classic edge-adaptive scaler, costs and temporal columns
        assert "| edge |" in card and "GFLOP / 1080p | warping error | flicker |" in card
        assert "## Temporal stability" in card
        seq = saved["sequences"]
        assert set(seq["warping_error"]) == {"bilinear", "bicubic", "edge", "model"}
        assert all(v > 0 for v in seq["warping_error"].values())
        assert saved["gflops_1080p_by_method"]["edge"] > saved["gflops_1080p_by_method"]["bicubic"]
        if cfg.eval.figure:
            assert (run / "tiny.temporal.png").is_file()
    else:
        assert saved["sequences"] is None and "Temporal" not in card


@needs_torch
@pytest.mark.train
@pytest.mark.gpu
def test_gate_failure_is_clear(tmp_path):
    from infer.training.cli import run_pipeline
    from infer.training.export import DeployGateError

    over = tiny(tmp_path, train={"steps": 2}, gate={"min_gain_db": 50.0})
    over["eval"]["figure"] = False
    with pytest.raises(DeployGateError, match=r"PSNR gain over bicubic .* below the required"):
        run_pipeline(load_config(overrides=over), progress=False)


@needs_torch
def test_onnx_flops_agree_with_the_torch_count(tmp_path):
    from infer.training.costs import classic_flops, onnx_flops
    from infer.training.export import export_onnx
    from infer.training.models import build_model, count_flops

    m = build_model("espcn", features=16, mid_features=8, extra_convs=1, activation="prelu")
    path = export_onnx(m, tmp_path / "m.onnx")
    assert onnx_flops(path) == pytest.approx(count_flops(m)["total"], rel=0.01)
    assert classic_flops("bilinear") < classic_flops("bicubic") < classic_flops("edge")


@needs_torch
@pytest.mark.train
def test_a_temporal_run_and_a_deepened_start(tmp_path):
    """The temporal term trains (pairs, same patches per step) and model.init starts a deeper
    espcn exactly where the shallower run ended (Net2Net)."""
    import torch

    from infer.training.train import train

    over = tiny(tmp_path, model={"activation": "prelu"}, train={"temporal_weight": 1.0})
    over["train"].update(temporal_margin=2, temporal_sequences=4)
    over["data"]["patch"] = 20  # > 2 * (margin + 4): sprites move up to 4 px
    first = train(load_config(overrides=over), progress=False)
    assert first.steps == 24 and np.isfinite(first.final_loss)
    deeper = tiny(
        tmp_path,
        model={
            "activation": "prelu",
            "extra_convs": 1,
            "init": str(tmp_path / "run" / "checkpoint.pt"),
        },
        train={"steps": 1},
        output={"dir": str(tmp_path / "deeper")},
    )
    cfg = load_config(overrides=deeper)
    from infer.training.models import deepen_from
    from infer.training.train import make_model

    model = make_model(cfg)
    deepen_from(model, torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"])
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        assert torch.equal(model(x), first.model(x))
    missing = load_config(overrides={**deeper, "model": {**deeper["model"], "init": "nope.pt"}})
    from infer.training.config import ConfigError

    with pytest.raises(ConfigError, match="nope.pt not found: train the model it starts from"):
        train(missing, progress=False)


@needs_torch
def test_evaluate_an_existing_model_without_training(tmp_path, capsys):
    """--evaluate: a model file (here the bundled default) on a config's held-out data, with
    --compare; the report and figures land in --out, nothing is trained or deployed."""
    from infer.training.cli import main

    cfg = tmp_path / "eval.toml"
    cfg.write_text(
        "[eval]\nframes = 2\nsize = [40, 64]\nsequences = 2\nsequence_frames = 3\n"
        f"figure = {'true' if importlib.util.find_spec('matplotlib') else 'false'}\n"
        '[gate]\nbeat = ["edge"]\n'
    )
    out = tmp_path / "eval"
    argv = ["--config", str(cfg), "--evaluate", "upscale.onnx", "--compare", "upscale-hq.onnx"]
    assert main([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["psnr"]) == {"bilinear", "bicubic", "edge", "upscale-hq.onnx", "model"}
    assert summary["sequences"]["warping_error"]["model"] > 0
    report = (out / "report.md").read_text()
    assert "# Evaluation: upscale.onnx" in report and "| upscale-hq.onnx |" in report
    assert not (tmp_path / "run").exists()
    assert main(["--config", str(cfg), "--evaluate", "nope.onnx", "--out", str(out)]) == 2
    assert "nope.onnx" in capsys.readouterr().err

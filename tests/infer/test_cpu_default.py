"""The light upscaler for CPU devices (issue 27): a bundled model whose 160x90 pass (the
adaptation's floor for a 640x360 source) costs a fraction of the default's in the engine's own
FLOPs and dispatches. It becomes the CPU default only once it keeps the quality floor (the
strict xfail below turns red when it does). Costs come from the compiled programs (nothing is
timed: no wall-clock bounds on a shared host); the quality floor is measured on the held-out
images by the training pipeline's evaluation (train marker)."""

from __future__ import annotations

import importlib.util
import json

import pytest

import infer
from infer.bundled import CPU_UPSCALER, DEFAULT_UPSCALER, resolve_model
from infer.compile import Program

FLOOR_SHAPE = (1, 3, 90, 160)  # 25 % of the default 640x360 test source
# the GPU default took ~51 ms a 160x90 pass on this 2-core lavapipe host against a 30 ms
# budget (33 ms less the adaptation's 10 % headroom): under 30/51 of its work fits
MAX_COST_RATIO = 0.55


def _program(name: str) -> Program:
    model = infer.load(str(resolve_model(name)))
    return model.program({model.inputs[0]: FLOOR_SHAPE}, measure=False)


def test_the_cpu_default_costs_a_fraction_of_the_gpu_default_per_floor_pass():
    gpu, cpu = _program(DEFAULT_UPSCALER), _program(CPU_UPSCALER)
    assert cpu.flops <= MAX_COST_RATIO * gpu.flops, (cpu.flops, gpu.flops)
    assert len(cpu.dispatches) <= len(gpu.dispatches), (
        [d.label for d in cpu.dispatches],
        [d.label for d in gpu.dispatches],
    )


@pytest.mark.train
@pytest.mark.skipif(not importlib.util.find_spec("torch"), reason="needs the train extra")
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 27: upscale-lite.onnx (15 min of fine-tuning on the shared host) is +1.32 dB "
    "over bicubic (warping error 7.77 vs 8.22): below the +2.0 dB floor; a longer run of "
    "configs/train-upscale-lite.toml has to lift it (strict: remove this mark when it passes)",
)
def test_the_cpu_default_keeps_the_quality_floor(tmp_path):
    """On the held-out frames and sequences its card reports (configs/train-upscale-lite.toml):
    >= +2.0 dB PSNR over bicubic, and a warping error no worse than bicubic's."""
    from infer.training.cli import main

    out = tmp_path / "eval"
    cfg = tmp_path / "eval.toml"  # the card's held-out data: 12 frames, 6 sequences
    cfg.write_text("[eval]\nframes = 12\nbench_runs = 1\nfigure = false\n")
    argv = ["--config", str(cfg), "--evaluate", CPU_UPSCALER, "--out", str(out)]
    assert main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["gain_db"] >= 2.0, s["gain_db"]
    warp = s["sequences"]["warping_error"]
    assert warp["model"] <= warp["bicubic"], warp


@pytest.mark.skipif(not importlib.util.find_spec("torch"), reason="needs the train extra")
def test_model_init_narrows_a_wider_trained_model(tmp_path):
    """model.init with a wider model (the light default starts from upscale.onnx): read from
    its ONNX file, the same widths reproduce it exactly, narrower ones keep a subset of its
    channels, PReLU slopes with them."""
    import torch

    from infer.training.export import export_onnx
    from infer.training.models import build_model, load_init, narrow_from

    torch.manual_seed(0)
    wide = build_model("espcn", features=8, mid_features=6, activation="prelu")
    for p in wide.parameters():
        torch.nn.init.normal_(p, std=0.1)
    state = load_init(export_onnx(wide.eval(), tmp_path / "wide.onnx"))
    same = build_model("espcn", features=8, mid_features=6, activation="prelu").eval()
    assert narrow_from(same, state) == 0
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.allclose(same(x), wide(x), atol=1e-6)
    narrow = build_model("espcn", features=4, mid_features=3, activation="prelu")
    assert narrow_from(narrow, state) == 4 + 3

    def first(m: torch.nn.Module, kind: type) -> torch.Tensor:
        layer = next(x for x in m.modules() if isinstance(x, kind))
        return torch.as_tensor(layer.weight).detach()

    rows = {tuple(r.flatten().tolist()) for r in first(wide, torch.nn.Conv2d)}
    assert all(tuple(r.flatten().tolist()) in rows for r in first(narrow, torch.nn.Conv2d))
    slopes = set(first(wide, torch.nn.PReLU).tolist())
    assert set(first(narrow, torch.nn.PReLU).tolist()) <= slopes
    with pytest.raises(ValueError, match="not wider"):
        narrow_from(build_model("espcn", features=16, mid_features=6, activation="prelu"), state)

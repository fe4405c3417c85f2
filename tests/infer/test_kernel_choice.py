"""Kernel choice by measurement (infer.kernel_choice): candidates timed on the device and the
winner cached on disk per device and driver, the cache re-read by the next load, broken
caches and bad settings handled, and what was chosen shown by `python -m infer check`."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import infer
from infer import kernel_choice
from infer.compile import specialise
from infer.errors import ModelError
from infer.graph import from_onnx
from infer.kernel_choice import KernelCache, MeasuringChooser, device_signature
from infer.ops.conv_site import ConvSite
from infer.ops.registry import Value
from infer.runtime import ConstantStore, Executable
from infer.tools.cli import main as cli_main

from .onnx_helpers import reference
from .test_conv_variants import conv_model

SHAPE = (1, 16, 23, 19)


@pytest.fixture
def model():
    return conv_model(16, 16, 3, SHAPE[:1] + SHAPE[2:], "Relu", pads=[1, 1, 1, 1])


def _program(model, chooser):
    device = infer.get_device()
    return specialise(from_onnx(model), {"x": Value(SHAPE)}, device.limits, chooser=chooser)


@pytest.mark.gpu
def test_measured_then_cached(model, tmp_path):
    device = infer.get_device()
    cache = KernelCache(tmp_path, device_signature(device))
    # no wall-clock budget: on a busy machine the 12 s default could stop before every
    # candidate is timed (the budget's own cut is test_small_convs_and_budget's, at 0 s)
    chooser = MeasuringChooser(device, "measure", cache, min_flops=0, budget_s=float("inf"))
    program = _program(model, chooser)
    (choice,) = program.kernel_choices.values()
    assert choice.how == "measured"
    assert (
        set(choice.ms)
        == set(choice.candidates)
        == {
            "direct",
            "winograd2",
            "winograd2-wide",
            "winograd4",
            "winograd2-sg",
            "direct-sg",
            "tiled",
        }
    )
    assert choice.kernel == min(choice.ms, key=choice.ms.__getitem__)
    assert {d.variant for d in program.dispatches} == {choice.kernel}
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    got = Executable(device, program, ConstantStore(device)).run({"x": x})["y"]
    ref = reference(model, {"x": x})[0]
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()

    data = json.loads(cache.path.read_text())
    assert data["signature"] == device_signature(device)
    assert data["choices"][choice.key]["kernel"] == choice.kernel
    # a new process: a fresh cache object on the same folder, nothing timed again
    fresh = KernelCache(tmp_path, device_signature(device))
    again = _program(model, MeasuringChooser(device, "measure", fresh, min_flops=0))
    (cached,) = again.kernel_choices.values()
    assert (cached.kernel, cached.how) == (choice.kernel, "cached")


@pytest.mark.gpu
def test_small_convs_and_budget(model, tmp_path):
    device = infer.get_device()
    cache = KernelCache(tmp_path, device_signature(device))
    (small,) = _program(model, MeasuringChooser(device, "measure", cache)).kernel_choices.values()
    assert (small.kernel, small.how) == ("direct", "rule"), "under MIN_FLOPS: not worth timing"
    assert not cache.path.exists()
    spent = MeasuringChooser(device, "measure", cache, min_flops=0, budget_s=0)
    (choice,) = _program(model, spent).kernel_choices.values()
    assert choice.how == "measured" and set(choice.ms) == {"direct"}, "budget: the rule only"


@pytest.mark.gpu
def test_a_broken_cache_is_measured_again(model, tmp_path, caplog):
    device = infer.get_device()
    cache = KernelCache(tmp_path, device_signature(device))
    cache.path.write_text("{not json")
    chooser = MeasuringChooser(device, "measure", KernelCache(tmp_path, device_signature(device)))
    chooser.min_flops = 0
    (choice,) = _program(model, chooser).kernel_choices.values()
    assert choice.how == "measured"
    assert "unreadable" in caplog.text
    assert json.loads(cache.path.read_text())["choices"][choice.key]["kernel"] == choice.kernel


def test_cache_of_another_driver_is_ignored(tmp_path):
    sig = {"vendor": "v", "device": "gpu", "driver": "Mesa 22.3.6", "backend": "Vulkan"}
    KernelCache(tmp_path, sig).put("k", {"kernel": "tiled", "ms": {}})
    assert KernelCache(tmp_path, sig).get("k")["kernel"] == "tiled"
    cache = KernelCache(tmp_path, sig)
    data = json.loads(cache.path.read_text())
    data["signature"]["driver"] = "Mesa 23.0"  # measured under another driver
    cache.path.write_text(json.dumps(data))
    assert KernelCache(tmp_path, sig).get("k") is None


@pytest.mark.gpu
def test_modes_and_errors(model, monkeypatch, tmp_path):
    monkeypatch.setenv("FRAMESMITH_KERNEL_CACHE", str(tmp_path))
    program = infer.load(model, kernels="rules").program({"x": SHAPE})
    assert [c.how for c in program.kernel_choices.values()] == ["rule"]
    monkeypatch.setenv("FRAMESMITH_KERNELS", "winograd4")
    program = infer.load(model).program({"x": SHAPE})
    assert [(c.kernel, c.how) for c in program.kernel_choices.values()] == [("winograd4", "forced")]
    with pytest.raises(ModelError, match="winograd2-wide"):
        infer.load(model, kernels="fastest")
    monkeypatch.setenv("FRAMESMITH_KERNELS", "measure")
    monkeypatch.setattr(kernel_choice, "MIN_FLOPS", 0)
    loaded = infer.load(model)  # a static input shape: specialised, and measured, at load
    (path,) = tmp_path.glob("kernels-*.json")  # where FRAMESMITH_KERNEL_CACHE says
    (entry,) = json.loads(path.read_text())["choices"].values()
    assert len(entry["ms"]) == 7
    (choice,) = loaded.program({"x": SHAPE}).kernel_choices.values()
    assert (choice.kernel, choice.how) == (entry["kernel"], "cached")


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FRAMESMITH_KERNEL_CACHE", str(tmp_path / "k"))
    assert kernel_choice.cache_dir() == tmp_path / "k"
    monkeypatch.delenv("FRAMESMITH_KERNEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(kernel_choice.sys, "platform", "linux")
    assert kernel_choice.cache_dir() == tmp_path / "xdg" / "framesmith" / "kernels"


def _site(h: int, w: int) -> ConvSite:
    z = np.zeros(1, np.float32)
    return ConvSite(
        None, "x", "y", z, z, 1, 64, h, w, 32, h, w, 3, 3, 1, 1, 1, 1, (1, 1, 1, 1), "fp32"
    )


def test_key_buckets_sizes():
    """A stream whose resolution adapts (a few percent at a time) keeps its measured choice;
    a map 4x smaller is measured again."""
    assert _site(360, 640).key() == _site(340, 600).key()
    assert _site(360, 640).key() != _site(180, 320).key()
    assert "64->32 k3x3" in _site(360, 640).key()


@pytest.mark.gpu
def test_check_prints_the_choices(model, tmp_path, capsys):
    import onnx

    path = tmp_path / "conv.onnx"
    onnx.save(model, path)
    assert cli_main(["check", str(path), "--size", "19x23", "--kernels", "winograd2-wide"]) == 0
    out = capsys.readouterr().out
    assert "winograd2-wide" in out and "forced" in out
    assert "parity vs onnxruntime" in out and "OK" in out


@pytest.mark.gpu
def test_a_large_map_is_timed_on_a_crop(tmp_path):
    """Candidates of a conv over 65536 output pixels are timed on a crop of whole rows (their
    own tensors), and the conv that runs is the full one."""
    shape = (1, 8, 300, 401)
    big = conv_model(8, 8, 3, (1, 300, 401), "Relu", pads=[1, 1, 1, 1])
    device = infer.get_device()
    seen: list[set[str]] = []

    class Spy(MeasuringChooser):
        def measure(self, built, others, trial):
            seen.append({b.ref for d in built[next(iter(built))].dispatches for b in d.bindings})
            return super().measure(built, others, trial)

    chooser = Spy(device, "measure", KernelCache(tmp_path, device_signature(device)), min_flops=0)
    program = specialise(from_onnx(big), {"x": Value(shape)}, device.limits, chooser=chooser)
    (choice,) = program.kernel_choices.values()
    assert choice.how == "measured" and "out>65536px" in choice.key
    assert {"x#trial", "y#trial"} <= seen[0]
    assert all(
        b.ref in ("x", "y") for d in program.dispatches for b in d.bindings if b.kind != "const"
    )
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    got = Executable(device, program, ConstantStore(device)).run({"x": x})["y"]
    ref = reference(big, {"x": x})[0]
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_untimed_choices_take_the_nearest_size_class_measured(tmp_path):
    """A size compiled while frames run is never timed: its class's cached choice, else the
    nearest class measured for the same conv, else the rule."""
    sig = {"vendor": "v", "device": "gpu", "driver": "d", "backend": "Vulkan"}
    cache = KernelCache(tmp_path, sig)
    big, mid, small = (_site(h, w).key() for h, w in ((360, 640), (100, 160), (20, 30)))
    assert len({big, mid, small}) == 3, "three size classes"
    cache.put(big, {"kernel": "winograd2-sg", "ms": {"winograd2-sg": 1.0}})
    cache.put(mid, {"kernel": "direct-sg", "ms": {"direct-sg": 1.0}})
    no_device = SimpleNamespace(is_cpu=False)  # nothing may run on it
    chooser = MeasuringChooser(no_device, "measure", cache).untimed()  # type: ignore[arg-type]
    cands = ["direct", "winograd2-sg", "direct-sg"]

    def no_trial(name: str):
        raise AssertionError("timed a candidate")

    assert (chooser(mid, cands, "direct", no_trial).how) == "cached"
    near = chooser(small, cands, "direct", no_trial)
    assert (near.kernel, near.how, near.key) == ("direct-sg", "nearest", small)
    # the nearest class's kernel is not a candidate here: the next one's is
    assert chooser(small, ["direct", "winograd2-sg"], "direct", no_trial).kernel == "winograd2-sg"
    other = mid.replace("64->32", "64->16")
    assert chooser(other, cands, "direct", no_trial).how == "rule", "another conv's choices"
    assert set(json.loads(cache.path.read_text())["choices"]) == {big, mid}, "nothing written"
    assert MeasuringChooser(no_device, "rules").untimed().mode == "rules"  # type: ignore[arg-type]


@pytest.mark.gpu
def test_prepare_without_measuring(monkeypatch, tmp_path):
    model = conv_model(16, 16, 3, (1, 8, 8), "Relu", pads=[1, 1, 1, 1])
    for d, name in zip(model.graph.input[0].type.tensor_type.shape.dim[2:], "hw", strict=True):
        d.dim_param = name  # any size
    monkeypatch.setenv("FRAMESMITH_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(kernel_choice, "MIN_FLOPS", 0)
    monkeypatch.setattr(kernel_choice, "BUDGET_S", 0)  # the rule alone is timed: quick
    loaded = infer.load(model, kernels="measure")
    first = loaded.prepare((1, 16, 40, 48))
    (measured,) = first.program.kernel_choices.values()
    assert measured.how == "measured"
    later = loaded.prepare((1, 16, 12, 10), measure=False)
    (untimed,) = later.program.kernel_choices.values()
    assert (untimed.kernel, untimed.how) == (measured.kernel, "nearest")
    (path,) = tmp_path.glob("kernels-*.json")
    assert list(json.loads(path.read_text())["choices"]) == [measured.key]

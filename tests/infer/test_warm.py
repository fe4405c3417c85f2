"""Compiling a new size while frames run (a service changing its input scale): on a driver that
makes machine code at a kernel's first run (lavapipe), `prepare(..., warm=True)` runs the model
once on a side device so that run does not hold up the device's own queue."""

from __future__ import annotations

import numpy as np
import pytest

import infer
from infer.device import Device
from infer.model import Model

from .onnx_helpers import reference
from .test_conv_variants import conv_model


def _any_size_model():
    model = conv_model(8, 8, 3, (1, 8, 8), "Relu", pads=[1, 1, 1, 1])
    for d, name in zip(model.graph.input[0].type.tensor_type.shape.dim[2:], "hw", strict=True):
        d.dim_param = name
    return model


def _on_fresh_device(onnx_model) -> Model:
    """The model on a device of its own, whose pipeline cache is empty: a kernel serves every
    size, so one another test compiled on the shared device would leave nothing to warm."""
    shared = infer.load(onnx_model, kernels="rules")
    return Model(shared.graph, Device(shared.device.adapter), kernels="rules")


@pytest.mark.gpu
def test_a_warmed_size_ran_once_on_the_side_device(monkeypatch):
    device = infer.get_device()
    if not device.compiles_at_first_dispatch:
        pytest.skip(f"{device.name} compiles kernels when their pipelines are made")
    monkeypatch.delenv("MESA_SHADER_CACHE_DISABLE", raising=False)
    onnx_model = _any_size_model()
    model = _on_fresh_device(onnx_model)
    device = model.device
    side = device.side()
    assert side is device.side() and side.device is not device.device, "one, with its own queue"
    before = side.cached_pipelines
    exe = model.prepare((1, 8, 21, 17), warm=True)
    assert side.cached_pipelines > before, "its kernels were made on the side device"
    made = side.cached_pipelines
    assert model.prepare((1, 8, 21, 17), warm=True) is exe
    assert side.cached_pipelines == made and len(model._warmed) == 1, "warmed once a size"
    model.prepare((1, 8, 13, 11), warm=False)
    monkeypatch.setenv("MESA_SHADER_CACHE_DISABLE", "true")
    model.prepare((1, 8, 9, 7), warm=True)  # no cache to fill: nothing gained by running
    assert len(model._warmed) == 1
    x = np.random.default_rng(0).standard_normal((1, 8, 21, 17)).astype(np.float32)
    got = model.run(x)
    ref = reference(onnx_model, {"x": x})[0]
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.gpu
def test_prepare_says_how_far_it_is(monkeypatch):
    """A service shows this to its viewers while a cheap mode serves (stream/preparing.py):
    each conv's kernel choice counted, then compiling, warming where it warms, then ready."""
    monkeypatch.delenv("MESA_SHADER_CACHE_DISABLE", raising=False)
    model = _on_fresh_device(_any_size_model())
    seen: list[tuple[str, int, int]] = []
    model.prepare((1, 8, 23, 19), warm=True, progress=lambda *step: seen.append(step))
    stages = [s for s, _, _ in seen]
    assert stages[0] == "kernels" and stages[-1] == "ready", seen
    assert ("kernels", 1, 1) in seen, "the model's one conv, counted once chosen"
    assert stages.index("compiling") > stages.index("kernels")
    if infer.get_device().compiles_at_first_dispatch:
        assert stages.index("warming") > stages.index("compiling")
    seen.clear()
    model.prepare((1, 8, 23, 19), warm=True, progress=lambda *step: seen.append(step))
    assert seen == [("ready", 1, 1)], "compiled before: nothing more to do"


@pytest.mark.gpu
def test_a_new_size_of_a_warmed_model_is_not_warmed_again(monkeypatch):
    """Issue 27: the kernels read the frame's size from uniforms, so once a model's kernels
    are compiled (and warmed) at one size, a new size (the service's next scale) has nothing
    to compile: it is not run on the side device, and its first frame compiles nothing."""
    device = infer.get_device()
    if not device.compiles_at_first_dispatch:
        pytest.skip(f"{device.name} compiles kernels when their pipelines are made")
    monkeypatch.delenv("MESA_SHADER_CACHE_DISABLE", raising=False)
    onnx_model = _any_size_model()
    model = _on_fresh_device(onnx_model)
    seen: list[tuple[str, int, int]] = []
    first = model.prepare((1, 8, 21, 17), warm=True, progress=lambda *s: seen.append(s))
    assert first.new_pipelines and ("warming", 0, 1) in seen
    made, side = model.device.cached_pipelines, model.device.side().cached_pipelines
    seen.clear()
    exe = model.prepare((1, 8, 26, 30), warm=True, progress=lambda *s: seen.append(s))
    assert exe.new_pipelines == 0 and "warming" not in [s for s, _, _ in seen], seen
    assert len(model._warmed) == 1 and model.device.side().cached_pipelines == side
    x = np.random.default_rng(1).standard_normal((1, 8, 26, 30)).astype(np.float32)
    got = model.run(x)
    assert model.device.cached_pipelines == made
    ref = reference(onnx_model, {"x": x})[0]
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()

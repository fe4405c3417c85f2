"""Whole networks exported from PyTorch: the engine matches onnxruntime at two odd sizes on one
loaded Model (dynamic height and width), and the graph passes did their job (BN folded into
convs, pixel shuffle recognised as DepthToSpace, activations fused into the convs)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import infer

from .models import INPUT, export
from .onnx_helpers import reference

pytestmark = pytest.mark.gpu

RTOL = 1e-4
SIZES = [(1, 3, 37, 45), (1, 3, 24, 32)]
NETS = ["espcn", "espcn_manual_shuffle", "fsrcnn", "srvgg", "dncnn", "unet"]
ACTIVATIONS = ("Relu", "PRelu", "Tanh", "LeakyRelu", "Sigmoid", "Clip")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, onnx.ModelProto]:
    root = tmp_path_factory.mktemp("zoo")
    return {name: onnx.load(str(export(name, root / f"{name}.onnx"))) for name in NETS}


@pytest.fixture(scope="module")
def loaded(exported) -> dict[str, infer.Model]:
    return {}  # filled lazily: one Model per net, shared by the tests below


def _model(name: str, exported, loaded) -> infer.Model:
    if name not in loaded:
        loaded[name] = infer.load(exported[name])
    return loaded[name]


def _program_ops(model: infer.Model, shape: tuple[int, ...]) -> list[str]:
    return [n.op_type for n in model.program({INPUT: shape}).graph.nodes]


@pytest.mark.parametrize("name", NETS)
def test_matches_onnxruntime_at_two_sizes(name, exported, loaded):
    model = _model(name, exported, loaded)
    rng = np.random.default_rng(0)
    for shape in SIZES:
        x = rng.random(shape, dtype=np.float32)
        (ref,) = reference(exported[name], {INPUT: x})
        got = model.run(x)
        assert got.shape == ref.shape, f"{shape}: shape {got.shape} != reference {ref.shape}"
        err = float(np.abs(got - ref).max()) / max(float(np.abs(ref).max()), 1e-6)
        assert err <= RTOL, f"{shape}: max relative error {err:.2e} > {RTOL:.0e}"


def test_dncnn_batchnorm_folded(exported, loaded):
    assert "BatchNormalization" in {n.op_type for n in exported["dncnn"].graph.node}
    ops = _program_ops(_model("dncnn", exported, loaded), SIZES[0])
    assert "BatchNormalization" not in ops
    assert ops.count("Conv") == 6


@pytest.mark.parametrize("name", ["espcn", "espcn_manual_shuffle", "srvgg"])
def test_pixel_shuffle_is_depth_to_space(name, exported, loaded):
    ops = _program_ops(_model(name, exported, loaded), SIZES[0])
    assert ops.count("DepthToSpace") == 1, ops
    assert not {"Reshape", "Transpose"} & set(ops), ops


@pytest.mark.parametrize("name", NETS)
def test_activations_fused_into_convs(name, exported, loaded):
    program = _model(name, exported, loaded).program({INPUT: SIZES[1]})
    producers = program.graph.producers()
    standalone = [
        n.name
        for n in program.graph.nodes
        if n.op_type in ACTIVATIONS
        and (p := producers.get(n.inputs[0])) is not None
        and p.op_type in ("Conv", "ConvTranspose")
    ]
    assert not standalone, f"activations left after a conv: {standalone}"
    n_act = sum(n.op_type in ACTIVATIONS for n in exported[name].graph.node)
    fused = sum("_activation" in n.attrs for n in program.graph.nodes)
    assert fused == n_act

"""Every conv kernel variant (direct, Winograd F(2,3)/F(4,3)/F(2,5), wide Winograd, tiled),
forced one at a time, against onnxruntime at odd sizes and against onnx's own Conv node tests;
the Winograd transforms against a plain correlation; row bands of every variant; and the
error F(4,3) adds, measured."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import infer
import infer.backend
from infer.compile import specialise
from infer.graph import from_onnx
from infer.ops.choice import Choice
from infer.ops.conv import VARIANT_NAMES
from infer.ops.conv_winograd import winograd_matrices
from infer.ops.registry import Value
from infer.runtime import ConstantStore, Executable

from .onnx_helpers import reference

pytestmark = pytest.mark.gpu

RTOL = 1e-4


def conv_model(
    ic: int,
    oc: int,
    k: int,
    shape: tuple[int, int, int],
    act: str | None = None,
    seed: int = 0,
    **attrs,
) -> onnx.ModelProto:
    """Conv (weights ~ 1/sqrt(fan-in), a bias) optionally followed by a fusable activation."""
    n, h, w = shape
    rng = np.random.default_rng(seed)
    wt = (rng.standard_normal((oc, ic, k, k)) / np.sqrt(ic * k * k)).astype(np.float32)
    inits = [
        numpy_helper.from_array(wt, "w"),
        numpy_helper.from_array(rng.random(oc, np.float32) - 0.5, "b"),
    ]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if act else "y"], **attrs)]
    if act == "PRelu":
        slope = (rng.random((oc, 1, 1)) * 0.5).astype(np.float32)
        inits.append(numpy_helper.from_array(slope, "slope"))
        nodes.append(helper.make_node("PRelu", ["c", "slope"], ["y"]))
    elif act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, ic, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    return model


# name: (ic, oc, k, (n, h, w), activation, attributes)
CASES = {
    "3x3_masked_lanes": (5, 7, 3, (1, 13, 17), None, dict(pads=[1, 1, 1, 1])),
    "3x3_rgb_tanh": (3, 9, 3, (1, 11, 10), "Tanh", dict(pads=[1, 1, 1, 1])),
    "3x3_gray_valid": (1, 4, 3, (1, 9, 12), "Relu", dict()),
    "3x3_asym_pads": (8, 6, 3, (1, 15, 14), None, dict(pads=[1, 0, 2, 1])),
    "3x3_same_lower": (4, 5, 3, (1, 10, 7), "LeakyRelu", dict(auto_pad="SAME_LOWER")),
    "3x3_batch2": (4, 8, 3, (2, 7, 9), None, dict(pads=[1, 1, 1, 1])),
    "3x3_32_to_12_prelu": (32, 12, 3, (1, 19, 21), "PRelu", dict(pads=[1, 1, 1, 1])),
    "3x3_64_to_32": (64, 32, 3, (1, 21, 27), "Tanh", dict(pads=[1, 1, 1, 1])),
    "5x5_rgb_to_64": (3, 64, 5, (1, 17, 13), "Tanh", dict(pads=[2, 2, 2, 2])),
    # Winograd weights over the 64 KiB of a uniform binding: read from a storage buffer
    "3x3_132_to_8": (132, 8, 3, (1, 9, 11), "Relu", dict(pads=[1, 1, 1, 1])),
    "5x5_strided": (4, 8, 5, (1, 15, 16), None, dict(strides=[2, 2], pads=[2, 2, 2, 2])),
}
# the variants each kernel size can run (the others fall back to the rule: direct)
APPLIES = {
    3: {"direct", "winograd2", "winograd2-wide", "winograd4", "winograd2-sg", "direct-sg", "tiled"},
    5: {"direct", "winograd2", "winograd2-wide", "winograd2-sg", "direct-sg", "tiled"},
}


def _max_rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max()) / max(float(np.abs(ref).max()), 1e-6)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize("case", list(CASES))
def test_variant_matches_onnxruntime(case, variant):
    ic, oc, k, shape, act, attrs = CASES[case]
    model = conv_model(ic, oc, k, shape, act, **attrs)
    x = np.random.default_rng(1).standard_normal((shape[0], ic, *shape[1:])).astype(np.float32)
    loaded = infer.load(model, kernels=variant)
    program = loaded.program({"x": x.shape})
    strided = attrs.get("strides", [1, 1]) != [1, 1]
    expected = (
        variant if variant in APPLIES[k] and not (strided and "winograd" in variant) else "direct"
    )
    assert {d.variant for d in program.dispatches} == {expected}
    (choice,) = program.kernel_choices.values()
    assert (choice.kernel, choice.how) == (expected, "forced" if expected == variant else "rule")
    err = _max_rel_error(loaded.run(x), reference(model, {"x": x})[0])
    assert err <= RTOL, f"{variant}: max relative error {err:.2e}"


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_variant_in_fp16_storage(variant):
    """fp16 tensors (the kernels compute in f32): within fp16's rounding of onnxruntime."""
    device = infer.get_device()
    if "shader-f16" not in device.features:
        pytest.skip("no shader-f16 on this adapter")
    model = conv_model(32, 12, 3, (1, 19, 21), "PRelu", pads=[1, 1, 1, 1])
    x = np.random.default_rng(4).random((1, 32, 19, 21), dtype=np.float32)
    loaded = infer.load(model, precision="fp16", kernels=variant)
    assert {d.variant for d in loaded.program({"x": x.shape}).dispatches} == {variant}
    assert _max_rel_error(loaded.run(x), reference(model, {"x": x})[0]) <= 5e-3


@pytest.fixture(scope="module")
def conv_node_tests():
    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators of other ops' cases warn
        cases = node_cases.collect_testcases("Conv")
    # collect_testcases filters by op type only on its first call in a process: after
    # another test collected every case it returns them all
    return [c for c in cases if {n.op_type for n in c.model.graph.node} == {"Conv"}]


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_variant_passes_onnx_conv_node_tests(variant, conv_node_tests):
    """onnx's Conv node tests (1-channel 5x5/7x5 inputs; padding, strides, asymmetric pads,
    SAME_UPPER), each through infer.backend with the variant forced where it applies."""
    assert len(conv_node_tests) >= 6
    for case in conv_node_tests:
        for inputs, outputs in case.data_sets:
            rep = infer.backend.prepare(case.model, kernels=variant)
            got = rep.run(inputs)
            for g, want in zip(got, outputs, strict=True):
                np.testing.assert_allclose(g, want, rtol=case.rtol, atol=1e-5, err_msg=case.name)


@pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (2, 5)])
def test_winograd_matrices_compute_a_correlation(m, r):
    bt, g, at = (
        np.array([[float(c) for c in row] for row in mat]) for mat in winograd_matrices(m, r)
    )
    a = m + r - 1
    assert bt.shape == (a, a) and g.shape == (a, r) and at.shape == (m, a)
    rng = np.random.default_rng(0)
    for _ in range(5):
        d, w = rng.standard_normal((a, a)), rng.standard_normal((r, r))
        y = at @ ((g @ w @ g.T) * (bt @ d @ bt.T)) @ at.T
        direct = [[np.sum(d[i : i + r, j : j + r] * w) for j in range(m)] for i in range(m)]
        np.testing.assert_allclose(y, direct, atol=1e-12)


def test_f43_is_lavin_and_grays():
    bt, g, at = winograd_matrices(4, 3)
    assert [[float(c) for c in row] for row in bt][0] == [4, 0, -5, 0, 1, 0]
    assert [float(c) for c in g[3]] == [1 / 24, 1 / 12, 1 / 6]
    assert [[float(c) for c in row] for row in at][3] == [0, 1, -1, 8, -8, 1]


def test_winograd_error_measured():
    """The error each variant adds over onnxruntime on a 64->32 3x3 layer at an odd size, inputs
    in [0, 1) like an image: F(2,3) and the direct kernel lose nothing measurable; F(4,3)'s
    larger transform coefficients cost about 10x more, still far under the 1e-4 the deploy
    gate allows (figures in the README, The engine)."""
    model = conv_model(64, 32, 3, (1, 37, 45), "PRelu", pads=[1, 1, 1, 1])
    x = np.random.default_rng(2).random((1, 64, 37, 45), dtype=np.float32)
    ref = reference(model, {"x": x})[0]
    errors = {v: _max_rel_error(infer.load(model, kernels=v).run(x), ref) for v in VARIANT_NAMES}
    print("max relative error vs onnxruntime:", {k: f"{v:.1e}" for k, v in errors.items()})
    assert all(errors[v] <= 5e-6 for v in ("winograd2", "winograd2-wide", "winograd2-sg"))
    assert errors["winograd4"] <= RTOL


@pytest.mark.parametrize(
    "variant", ["direct", "winograd2", "winograd2-wide", "winograd4", "winograd2-sg", "direct-sg"]
)
def test_row_bands(variant):
    """With a storage-binding limit far below the maps, the kernels run band by band (the
    Winograd bands start on whole tiles and read every row their tiles need)."""
    model = conv_model(8, 8, 3, (1, 37, 29), "Relu", pads=[1, 1, 1, 1])
    device = infer.get_device()
    limits = dict(device.limits, **{"max-storage-buffer-binding-size": 8 << 10})

    def force(key, candidates, rule, trial):
        return Choice(variant, "forced", candidates, key)

    program = specialise(from_onnx(model), {"x": Value((1, 8, 37, 29))}, limits, chooser=force)
    assert len(program.dispatches) > 2, "not split into bands"
    assert {d.variant for d in program.dispatches} == {variant}
    x = np.random.default_rng(3).standard_normal((1, 8, 37, 29)).astype(np.float32)
    got = Executable(device, program, ConstantStore(device)).run({"x": x})["y"]
    assert _max_rel_error(got, reference(model, {"x": x})[0]) <= RTOL


def test_subgroup_variants_need_eight_lanes():
    """The sg kernels broadcast from lanes 0-7 of a subgroup: on a device whose subgroups are
    narrower (or that has none) they are not candidates."""
    device = infer.get_device()
    if device.limits["subgroup-size"] < 8:
        pytest.skip("this adapter has no subgroups of 8 lanes")
    model = conv_model(8, 8, 3, (1, 9, 11), "Relu", pads=[1, 1, 1, 1])
    seen = []

    def force(key, candidates, rule, trial):
        seen.append(candidates)
        pick = "winograd2-sg" if "winograd2-sg" in candidates else rule
        return Choice(pick, "forced", candidates, key)

    for lanes in (8, 4, 0):
        limits = dict(device.limits, **{"subgroup-size": lanes})
        specialise(from_onnx(model), {"x": Value((1, 8, 9, 11))}, limits, chooser=force)
    assert [{"winograd2-sg", "direct-sg"} & set(c) for c in seen] == [
        {"winograd2-sg", "direct-sg"},
        set(),
        set(),
    ]


def _gate_parity(path, kernels: str) -> float:
    """The deploy gate's parity check (infer.training.export.engine_parity, without torch): a
    random 37x53 frame through the engine and onnxruntime."""
    import onnxruntime as ort

    x = np.random.default_rng(0).random((1, 3, 37, 53), dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return _max_rel_error(infer.load(path, kernels=kernels).run(x), ref)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_bundled_models_pass_the_deploy_gate_with_every_variant(variant):
    from infer.bundled import bundled_dir, bundled_models

    assert bundled_models(), "no bundled models"
    for name in bundled_models():
        err = _gate_parity(bundled_dir() / name, variant)
        assert err <= RTOL, f"{name} with {variant}: relative error {err:.2e}"


@pytest.mark.slow
def test_bundled_models_pass_the_deploy_gate_with_measured_kernels(monkeypatch, tmp_path):
    from infer import kernel_choice
    from infer.bundled import bundled_dir, bundled_models

    monkeypatch.setenv("FRAMESMITH_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(kernel_choice, "MIN_FLOPS", 0)  # test frames are small: time them all
    for name in bundled_models():
        err = _gate_parity(bundled_dir() / name, "measure")
        assert err <= RTOL, f"{name} with measured kernels: relative error {err:.2e}"
    (cache,) = tmp_path.glob("kernels-*.json")
    assert len(json.loads(cache.read_text())["choices"]) >= 3

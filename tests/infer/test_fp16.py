"""precision="fp16": tensors stored as f16 on the GPU (half the memory and bandwidth),
kernels computing in f32, weights kept in f32. Every op family and the reference
architectures match onnxruntime's fp32 output within what f16 storage allows (its unit
roundoff is 4.9e-4; errors add up over layers)."""

from __future__ import annotations

import numpy as np
import pytest

import infer

from .onnx_helpers import random_inputs, reference, single_node_model

pytestmark = pytest.mark.gpu

RTOL = 5e-3

rng = np.random.default_rng(3)

CASES = {
    "conv_packed": (
        "Conv",
        {"x": (1, 5, 13, 17)},
        {"w": rng.standard_normal((7, 5, 3, 3)), "b": rng.standard_normal(7)},
        {"pads": [1, 1, 1, 1]},
    ),
    "conv_depthwise": (
        "Conv",
        {"x": (1, 8, 13, 17)},
        {"w": rng.standard_normal((8, 1, 3, 3))},
        {"group": 8, "strides": [2, 2]},
    ),
    "conv_transpose": (
        "ConvTranspose",
        {"x": (1, 4, 7, 9)},
        {"w": rng.standard_normal((4, 3, 4, 4))},
        {"strides": [2, 2], "pads": [1, 1, 1, 1]},
    ),
    "resize_linear": (
        "Resize",
        {"x": (1, 3, 9, 11)},
        {"roi": np.zeros(0), "scales": np.array([1, 1, 2, 2])},
        {"mode": "linear"},
    ),
    "maxpool": ("MaxPool", {"x": (1, 6, 13, 17)}, {}, {"kernel_shape": [3, 3], "strides": [2, 2]}),
    "instance_norm": (
        "InstanceNormalization",
        {"x": (1, 6, 13, 17)},
        {"s": rng.standard_normal(6), "b": rng.standard_normal(6)},
        {},
    ),
    "batch_norm": (
        "BatchNormalization",
        {"x": (1, 6, 13, 17)},
        {
            "s": rng.standard_normal(6),
            "b": rng.standard_normal(6),
            "m": rng.standard_normal(6),
            "v": rng.random(6) + 0.5,
        },
        {},
    ),
    "concat_with_constant": (
        "Concat",
        {"x": (1, 3, 5, 7)},
        {"c": rng.standard_normal((1, 2, 5, 7))},
        {"axis": 1},
    ),
    "add_broadcast": ("Add", {"x": (1, 5, 13, 17), "z": (1, 5, 1, 17)}, {}, {}),
    "mul_same": ("Mul", {"x": (1, 5, 13, 17), "z": (1, 5, 13, 17)}, {}, {}),
    "sigmoid": ("Sigmoid", {"x": (1, 5, 13, 17)}, {}, {}),
    "pad_reflect": (
        "Pad",
        {"x": (1, 3, 5, 7)},
        {"p": np.array([0, 0, 1, 2, 0, 0, 2, 1])},
        {"mode": "reflect"},
    ),
    "depth_to_space": ("DepthToSpace", {"x": (1, 12, 5, 7)}, {}, {"blocksize": 2}),
    "reduce_mean_space": ("ReduceMean", {"x": (1, 5, 13, 17)}, {}, {"axes": [2, 3]}),
}


def _consts(consts: dict) -> dict:
    out = {}
    for k, v in consts.items():
        v = np.asarray(v)
        out[k] = v.astype(np.int64) if k in ("p",) else v.astype(np.float32)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_op_in_fp16_storage_matches_onnxruntime_fp32(name):
    op, inputs, consts, attrs = CASES[name]
    model = single_node_model(op, inputs, _consts(consts), **attrs)
    feeds = random_inputs(inputs)
    ref = reference(model, feeds)[0]
    m = infer.load(model, precision="fp16")
    got = m.run(feeds if len(feeds) > 1 else next(iter(feeds.values())))
    got = next(iter(got.values())) if isinstance(got, dict) else got
    assert got.dtype == np.float32 and got.shape == ref.shape
    err = float(np.abs(got - ref).max()) / max(float(np.abs(ref).max()), 1e-6)
    assert err <= RTOL, f"max relative error {err:.2e} > {RTOL:.0e}"
    assert err > 0 or name in ("maxpool", "depth_to_space", "concat_with_constant", "pad_reflect")


def test_fp16_halves_tensor_memory():
    model = single_node_model(
        "Conv", {"x": (1, 8, 32, 48)}, _consts({"w": rng.standard_normal((16, 8, 3, 3))})
    )
    shape = (1, 8, 32, 48)
    full = infer.load(model).prepare(shape)
    half = infer.load(model, precision="fp16").prepare(shape)
    assert (full.scalar, half.scalar) == ("f32", "f16")
    assert half.pool_bytes * 2 == pytest.approx(full.pool_bytes, rel=0.05)


@pytest.mark.parametrize("arch", ["espcn", "fsrcnn", "srvgg", "dncnn", "unet"])
def test_reference_architectures_in_fp16(arch, tmp_path):
    models = pytest.importorskip("tests.infer.models")  # needs torch (the train extra)
    path = tmp_path / f"{arch}.onnx"
    models.export(arch, path)
    x = np.random.default_rng(0).random((1, 3, 37, 45), dtype=np.float32)
    ref = reference(__import__("onnx").load(str(path)), {models.INPUT: x})[0]
    got = infer.load(path, precision="fp16").run(x)
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert err <= RTOL, f"{arch}: max relative error {err:.2e}"


def test_unknown_precision_is_refused():
    model = single_node_model("Relu", {"x": (1, 4, 5, 5)})
    with pytest.raises(infer.ModelError, match="precision"):
        infer.load(model, precision="int8")


@pytest.mark.parametrize("arch", ["span_x4", "nafnet"])
def test_fp16_onnx_file_runs_in_fp16_storage(arch, tmp_path):
    """A published-style fp16 file (float16 weights, input and output: `model.half()` then
    torch's exporter) loads, runs with f16 storage and matches the fp32 model of the same
    weights (onnxruntime) within what f16 weights and storage allow: onnxruntime's own run of
    the fp16 file sets that scale."""
    torch = pytest.importorskip("torch", reason="the zoo needs torch (the train extra)")
    import onnx

    from infer.training.zoo import INPUT, OUTPUT, build

    model = build(arch)
    paths = {}
    for kind, net in (("fp32", model), ("fp16", build(arch).half())):
        paths[kind] = tmp_path / f"{arch}_{kind}.onnx"
        dtype = torch.float16 if kind == "fp16" else torch.float32
        torch.onnx.export(
            net, (torch.rand(1, 3, 40, 48, dtype=dtype),), str(paths[kind]),
            input_names=[INPUT], output_names=[OUTPUT], opset_version=17,
            dynamic_axes={INPUT: {2: "h", 3: "w"}}, dynamo=False,
        )  # fmt: skip
    half = onnx.load(str(paths["fp16"]))
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert {t.data_type for t in half.graph.initializer} == {onnx.TensorProto.FLOAT16}
    x = np.random.default_rng(0).random((1, 3, 27, 19), dtype=np.float32)
    (ref,) = reference(onnx.load(str(paths["fp32"])), {INPUT: x})
    (ort_half,) = reference(half, {INPUT: x.astype(np.float16)})
    engine = infer.load(half, precision="fp16")
    assert engine.prepare((1, 3, 27, 19)).scalar == "f16"
    got = engine.run(x.astype(np.float16))
    assert got.shape == ref.shape
    scale = float(np.abs(ref).max())
    err = float(np.abs(got - ref).max()) / scale
    ort_err = float(np.abs(ort_half.astype(np.float32) - ref).max()) / scale
    assert err <= max(RTOL, 3 * ort_err), f"{err:.1e} (onnxruntime's fp16 file: {ort_err:.1e})"

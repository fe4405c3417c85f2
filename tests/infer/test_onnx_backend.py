"""onnx's own node tests (onnx.backend.test) for the ops the engine claims, run through
`infer.backend`.

BackendTest generates `<name>_cpu` and `<name>_cuda` variants of every test; our
`supports_device` accepts "CPU" (and "GPU") but not "CUDA", so each case runs once and the
`_cuda` twin is skipped. Everything not matched by INCLUDED is skipped too, as is every case in
EXCLUDED (a variant the engine deliberately does not support, with the reason).
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnx.backend.test
import onnx.reference
import pytest

import infer.backend

pytestmark = pytest.mark.gpu

# op -> name patterns of its node tests (every generated name ends in _cpu / _cuda, so a
# trailing "_" keeps e.g. ^test_add_ from matching another op's test).
INCLUDED = {
    "Conv": [r"^test_conv_with_", r"^test_basic_conv_"],
    "ConvTranspose": [r"^test_convtranspose_"],
    "DepthToSpace": [r"^test_depthtospace_"],
    "SpaceToDepth": [r"^test_spacetodepth_"],
    "Resize": [r"^test_resize_"],
    "Upsample": [r"^test_upsample_"],
    "Add": [r"^test_add_"],
    "Sub": [r"^test_sub_"],
    "Mul": [r"^test_mul_"],
    "Div": [r"^test_div_"],
    "Concat": [r"^test_concat_"],
    "Slice": [r"^test_slice_"],
    "Pad": [r"^test_(constant|edge|reflect|wrap)_pad_"],
    "Relu": [r"^test_relu_"],
    "LeakyRelu": [r"^test_leakyrelu_"],
    "PRelu": [r"^test_prelu_"],
    "Clip": [r"^test_clip_"],
    "Sigmoid": [r"^test_sigmoid_"],
    "Tanh": [r"^test_tanh_"],
    "HardSigmoid": [r"^test_hardsigmoid_"],
    "HardSwish": [r"^test_hardswish_"],
    "Elu": [r"^test_elu_"],
    "Gelu": [r"^test_gelu_"],
    "Softplus": [r"^test_softplus_"],
    "BatchNormalization": [r"^test_batchnorm_"],
    "InstanceNormalization": [r"^test_instancenorm_"],
    "MaxPool": [r"^test_maxpool_"],
    "AveragePool": [r"^test_averagepool_"],
    "GlobalAveragePool": [r"^test_globalaveragepool_"],
    "ReduceMean": [r"^test_reduce_mean_"],
    "Transpose": [r"^test_transpose_"],
    "Reshape": [r"^test_reshape_"],
    "Flatten": [r"^test_flatten_"],
    "Identity": [r"^test_identity_"],
    # issue 20: the ops of the architectures users bring
    "Sqrt": [r"^test_sqrt_"],
    "Reciprocal": [r"^test_reciprocal_"],
    "Exp": [r"^test_exp_"],
    "Log": [r"^test_log_"],
    "Neg": [r"^test_neg_"],
    "Abs": [r"^test_abs_"],
    "Erf": [r"^test_erf_"],
    "Floor": [r"^test_floor_"],
    "Ceil": [r"^test_ceil_"],
    "Round": [r"^test_round_"],
    "Sign": [r"^test_sign_"],
    "Sin": [r"^test_sin_"],
    "Cos": [r"^test_cos_"],
    "Softsign": [r"^test_softsign_"],
    "Selu": [r"^test_selu_"],
    "Celu": [r"^test_celu_"],
    "ThresholdedRelu": [r"^test_thresholdedrelu_"],
    "Mish": [r"^test_mish_"],
    "Pow": [r"^test_pow_"],
    "Mod": [r"^test_mod_"],
    "Max": [r"^test_max_"],
    "Min": [r"^test_min_"],
    "Sum": [r"^test_sum_"],
    "Mean": [r"^test_mean_"],
    "Equal": [r"^test_equal_"],
    "Less": [r"^test_less_"],
    "Greater": [r"^test_greater_"],
    "Not": [r"^test_not_"],
    "And": [r"^test_and"],
    "Or": [r"^test_or"],
    "Xor": [r"^test_xor"],
    "Where": [r"^test_where_"],
    "Softmax": [r"^test_softmax_"],
    "LogSoftmax": [r"^test_logsoftmax_"],
    "LayerNormalization": [r"^test_layer_normalization_"],
    "MatMul": [r"^test_matmul_"],
    "Gemm": [r"^test_gemm_"],
    "Einsum": [r"^test_einsum_"],
    "Split": [r"^test_split_"],
    "ReduceSum": [r"^test_reduce_sum_"],
    "ReduceMax": [r"^test_reduce_max_"],
    "ReduceMin": [r"^test_reduce_min_"],
    "ReduceProd": [r"^test_reduce_prod_"],
    "ReduceL1": [r"^test_reduce_l1_"],
    "ReduceL2": [r"^test_reduce_l2_"],
    "ReduceSumSquare": [r"^test_reduce_sum_square_"],
    "ReduceLogSumExp": [r"^test_reduce_log_sum_exp_"],
    "Gather": [r"^test_gather_(0|1|2d|negative)"],
    "Expand": [r"^test_expand_"],
    "Tile": [r"^test_tile_"],
    "Squeeze": [r"^test_squeeze_"],
    "Unsqueeze": [r"^test_unsqueeze_"],
    "Range": [r"^test_range_"],
    "ConstantOfShape": [r"^test_constantofshape_"],
    "ScatterND": [r"^test_scatternd"],  # (test_scatternd itself: no trailing "_")
    "TopK": [r"^test_top_k"],
    "Shape": [r"^test_shape_"],
    "Cast": [r"^test_cast_FLOAT_to_FLOAT16_"],
}

_FUNCTION_BODY = "expanded function body uses {ops}, which the engine does not implement"
_FOLD_ONLY = "only on constants (fold-only); on a GPU tensor they are unsupported"

# Variants the engine does not support, by design: pattern -> reason.
EXCLUDED: dict[str, str] = {
    # Expanded (function-body) twins: the op itself is tested by its plain test.
    r"^test_(elu|hardsigmoid|leakyrelu|prelu|relu)_(.*_)?expanded": _FUNCTION_BODY.format(
        ops="CastLike (and Exp for Elu)"
    ),
    r"^test_softplus_(.*_)?expanded": _FUNCTION_BODY.format(ops="CastLike, Exp and Log"),
    r"^test_gelu_.*_expanded": _FUNCTION_BODY.format(ops="CastLike, Sum (and Erf)"),
    r"^test_clip_(?!default_int8_|default_inbounds_).*expanded": _FUNCTION_BODY.format(
        ops="Less and Where " + _FOLD_ONLY
    ),
    # Types other than float32 tensors.
    r"^test_identity_(opt|sequence)_": "optional and sequence types: the engine runs tensors",
    r"^test_maxpool_2d_uint8_": "uint8 tensor on the GPU: only float32 tensors run there",
    # Training and auxiliary outputs.
    r"^test_batchnorm_.*_training_mode_": "training-mode BatchNormalization (batch statistics, "
    "running-stat outputs): the engine is inference only",
    r"^test_maxpool_with_argmax_": "MaxPool's Indices output",
    # Empty tensors.
    r"^test_reshape_allowzero_reordered_": "empty tensor (a 0 dimension) on the GPU",
    r"^test_slice_start_out_of_bounds_": "empty output tensor on the GPU",
    r"^test_reduce_.*_empty_set": "reduction of an empty tensor on the GPU",
    # Integer and bfloat16 results: GPU tensors are float32 (or float16) and nothing else.
    r"^test_pow_types_int(32|64)_float32_": "integer result of a GPU computation",
    r"^test_einsum_.*_bfloat16_": "bfloat16 tensors (numpy's einsum refuses them too)",
    # Einsum beyond a batched product of two operands (refused by name, see ops/matmul.py).
    r"^test_einsum_(transpose|sum|batch_diagonal|scalar)_": "einsum with one operand, a "
    "diagonal or no output index: not a batched product of two operands",
    # Sequences and control flow.
    r"^test_split_to_sequence_": "sequence outputs: the engine runs tensors",
    r"^test_range_.*_expanded": _FUNCTION_BODY.format(ops="Loop"),
    # Resize variants.
    r"^test_resize_.*_antialias_": "antialiased Resize (downscaling filter)",
    r"^test_resize_downsample_scales_(linear|cubic)_align_corners_": "align_corners with a "
    "fractional output length (scales 0.6 / 0.8): onnx's reference divides by the unrounded "
    "length (scale x input - 1); the engine, like onnxruntime and PyTorch, uses the integer "
    "output length",
}

with warnings.catch_warnings():
    # onnx's test-case generators warn (overflow casts...), and enable_report uses a pytest
    # mark (onnx_coverage) this project does not register.
    warnings.simplefilter("ignore")
    backend_test = onnx.backend.test.BackendTest(infer.backend, __name__)
    for _patterns in INCLUDED.values():
        for _pattern in _patterns:
            backend_test.include(_pattern)
    for _pattern in EXCLUDED:
        backend_test.exclude(_pattern)
    globals().update(backend_test.enable_report().test_cases)


# ---- the backend API itself ---------------------------------------------------------------


def test_supports_device():
    assert infer.backend.supports_device("CPU")
    assert infer.backend.supports_device("GPU")
    assert not infer.backend.supports_device("CUDA")


def test_run_node_conv_with_outputs_info():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 6, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    (y,) = infer.backend.run_node(node, [x, w], outputs_info=[(np.float32, (1, 4, 6, 7))])
    (ref,) = onnx.reference.ReferenceEvaluator(
        onnx.helper.make_model(
            onnx.helper.make_graph(
                [node],
                "g",
                [
                    onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape),
                    onnx.helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, w.shape),
                ],
                [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
            )
        )
    ).run(None, {"x": x, "w": w})
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_run_node_clip_scalar_inputs_and_dict():
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(1, 2, 3, 4)
    node = onnx.helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
    feeds = {"x": x, "lo": np.float32(-0.5), "hi": np.float32(1.0)}
    out = infer.backend.run_node(node, feeds, opset_version=17)
    np.testing.assert_allclose(out["y"], np.clip(x, -0.5, 1.0), rtol=1e-6)


def test_run_model_and_errors():
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 3, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 3, 3])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    x = np.arange(-9, 9, dtype=np.float64).reshape(1, 2, 3, 3)
    (y,) = infer.backend.run_model(model, [x])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.maximum(x, 0).astype(np.float32))
    with pytest.raises(infer.ModelError, match="1 input"):
        infer.backend.prepare(model).run([x, x])
    with pytest.raises(infer.ModelError, match="CUDA"):
        infer.backend.prepare(model, "CUDA")
    bad = onnx.helper.make_node("FooBar", ["x"], ["y"])
    with pytest.raises(infer.UnsupportedModelError, match="FooBar"):
        infer.backend.run_node(bad, [x.astype(np.float32)])

import numpy as np
import pytest

from .onnx_helpers import assert_matches, random_inputs, single_node_model

pytestmark = pytest.mark.gpu

CASES = {
    "3x3_pad1": dict(ic=5, oc=7, k=(3, 3), pads=[1, 1, 1, 1]),
    "5x5_rgb_to_64": dict(ic=3, oc=64, k=(5, 5), pads=[2, 2, 2, 2]),
    "strided_asym": dict(
        ic=8, oc=12, k=(3, 3), dilations=[2, 2], pads=[2, 1, 2, 1], strides=[1, 2]
    ),
    "1x1": dict(ic=9, oc=5, k=(1, 1)),
    "grouped": dict(ic=6, oc=6, k=(3, 3), group=3, strides=[2, 2]),
    "depthwise": dict(ic=8, oc=8, k=(3, 3), group=8, pads=[1, 1, 1, 1]),
    "same_upper": dict(ic=4, oc=4, k=(4, 4), auto_pad="SAME_UPPER", strides=[2, 2]),
    "same_lower": dict(ic=4, oc=5, k=(3, 2), auto_pad="SAME_LOWER"),
    "valid_rect": dict(ic=3, oc=3, k=(2, 5), auto_pad="VALID"),
    "no_bias": dict(ic=5, oc=6, k=(3, 3), bias=False),
    # one input block with 1 or 2 live lanes: the kernel skips the zero lanes' columns
    "gray_in": dict(ic=1, oc=9, k=(3, 3), pads=[1, 1, 1, 1]),
    "two_in_strided": dict(ic=2, oc=4, k=(3, 3), strides=[2, 2]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_conv_matches_onnxruntime(name):
    case = dict(CASES[name])
    ic, oc, k = case.pop("ic"), case.pop("oc"), case.pop("k")
    bias = case.pop("bias", True)
    rng = np.random.default_rng(1)
    consts = {"w": rng.standard_normal((oc, ic // case.get("group", 1), *k)).astype(np.float32)}
    if bias:
        consts["b"] = rng.standard_normal(oc).astype(np.float32)
    inputs = {"x": (1, ic, 13, 17)}
    model = single_node_model("Conv", inputs, consts, **case)
    assert_matches(model, random_inputs(inputs))


@pytest.mark.parametrize("dims", [1, 3])
def test_conv_other_ranks(dims):
    rng = np.random.default_rng(2)
    spatial = (11, 7, 5)[:dims]
    consts = {"w": rng.standard_normal((4, 3, *([3] * dims))).astype(np.float32)}
    inputs = {"x": (2, 3, *spatial)}
    model = single_node_model("Conv", inputs, consts, pads=[1] * (2 * dims))
    assert_matches(model, random_inputs(inputs))


@pytest.mark.parametrize(
    "attrs",
    [
        dict(strides=[2, 2]),
        dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
        dict(strides=[3, 2], dilations=[1, 2], group=2),
        dict(strides=[2, 2], output_shape=[27, 35]),
        dict(strides=[2, 2], auto_pad="SAME_UPPER"),
        dict(strides=[1, 1], pads=[1, 0, 2, 1]),
        dict(strides=[3, 3], pads=[2, 1, 0, 2], output_padding=[2, 1]),
        dict(kernel_shape=[9, 9], strides=[2, 2], pads=[4, 4, 4, 4], output_padding=[1, 1]),
        dict(kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]),
        dict(kernel_shape=[2, 2], strides=[4, 4], output_padding=[3, 1]),
    ],
)
def test_conv_transpose_matches_onnxruntime(attrs):
    rng = np.random.default_rng(3)
    group = attrs.get("group", 1)
    k = attrs.get("kernel_shape", [3, 3])
    consts = {
        "w": rng.standard_normal((4, 6 // group, *k)).astype(np.float32),
        "b": rng.standard_normal(6).astype(np.float32),
    }
    inputs = {"x": (1, 4, 13, 17)}
    model = single_node_model("ConvTranspose", inputs, consts, **attrs)
    assert_matches(model, random_inputs(inputs))


def test_conv_transpose_runs_as_subpixel_conv_with_fused_prelu():
    """Stride-2 ConvTranspose + PRelu (FSRCNN's tail) runs on the tiled conv kernel: one Conv
    to 4x the channels with the PReLU fused, a DepthToSpace and a crop; no scatter kernel."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import infer

    rng = np.random.default_rng(4)
    w = numpy_helper.from_array(rng.standard_normal((5, 3, 9, 9)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    a = numpy_helper.from_array(rng.random((3, 1, 1)).astype(np.float32), "a")
    nodes = [
        helper.make_node(
            "ConvTranspose", ["x", "w", "b"], ["t"], strides=[2, 2], pads=[4, 4, 4, 4],
            output_padding=[1, 1],
        ),
        helper.make_node("PRelu", ["t", "a"], ["y"]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "tail",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 11, 13])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 22, 26])],
        [w, b, a],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    kernels = [d.template for d in infer.load(model).program({"x": (1, 5, 11, 13)}).dispatches]
    assert "conv_transpose.wgsl" not in kernels and "conv2d.wgsl" in kernels, kernels
    assert_matches(model, random_inputs({"x": (1, 5, 11, 13)}))

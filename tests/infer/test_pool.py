import numpy as np
import pytest

from infer.graph import Node
from infer.ops import lookup

from .onnx_helpers import assert_matches, random_inputs, reference, single_node_model

pytestmark = pytest.mark.gpu

X = (1, 5, 13, 17)

CASES = {
    "max_3x3_s2": ("MaxPool", X, dict(kernel_shape=[3, 3], strides=[2, 2]), 17),
    "max_pads_dilated": (
        "MaxPool",
        X,
        dict(kernel_shape=[3, 2], pads=[1, 0, 2, 1], dilations=[2, 1]),
        17,
    ),
    "max_ceil": ("MaxPool", X, dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1), 17),
    "max_ceil_pads": (
        "MaxPool",
        X,
        dict(kernel_shape=[3, 3], strides=[2, 3], pads=[1, 1, 1, 1], ceil_mode=1),
        17,
    ),
    "max_same_upper": (
        "MaxPool",
        X,
        dict(kernel_shape=[4, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        17,
    ),
    "max_same_lower": ("MaxPool", X, dict(kernel_shape=[2, 3], auto_pad="SAME_LOWER"), 17),
    "max_1d": ("MaxPool", (2, 3, 19), dict(kernel_shape=[3], strides=[2], pads=[1, 1]), 17),
    "max_3d": ("MaxPool", (1, 3, 5, 7, 9), dict(kernel_shape=[2, 3, 2], strides=[1, 2, 2]), 17),
    "avg_3x3": ("AveragePool", X, dict(kernel_shape=[3, 3], strides=[2, 2]), 17),
    "avg_pads_exclude": ("AveragePool", X, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), 17),
    "avg_pads_include": (
        "AveragePool",
        X,
        dict(kernel_shape=[3, 4], pads=[1, 2, 1, 1], count_include_pad=1),
        17,
    ),
    "avg_ceil": ("AveragePool", X, dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), 17),
    "avg_ceil_include": (
        "AveragePool",
        X,
        dict(
            kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, pads=[1, 1, 1, 1], count_include_pad=1
        ),
        17,
    ),
    "avg_same_upper": (
        "AveragePool",
        X,
        dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        17,
    ),
    "avg_valid": ("AveragePool", X, dict(kernel_shape=[2, 5], auto_pad="VALID"), 17),
    "avg_dilated_19": (
        "AveragePool",
        X,
        dict(kernel_shape=[3, 3], dilations=[2, 1], pads=[2, 1, 2, 1], count_include_pad=1),
        19,
    ),
    "avg_1d": ("AveragePool", (2, 3, 19), dict(kernel_shape=[4], strides=[3], pads=[2, 1]), 17),
    "avg_3d": (
        "AveragePool",
        (1, 3, 5, 7, 9),
        dict(kernel_shape=[2, 2, 3], pads=[0, 1, 1, 1, 0, 1]),
        17,
    ),
}


def _check_fold(model, feeds, op, attrs, opset):
    ref = reference(model, feeds)[0]
    node = Node(op, "n", ["x"], ["y0"], dict(attrs))
    got = lookup(op, opset).evaluate(node, [feeds["x"]], opset)[0]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("name", list(CASES))
def test_pool_matches_onnxruntime(name):
    op, shape, attrs, opset = CASES[name]
    inputs = {"x": shape}
    model = single_node_model(op, inputs, opset=opset, **attrs)
    feeds = random_inputs(inputs)
    _check_fold(model, feeds, op, attrs, opset)
    assert_matches(model, feeds)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(1, 5, 13, 17), (2, 3, 7), (1, 6, 3, 4, 5), (1, 16, 64, 64)])
def test_global_pool_matches_onnxruntime(op, shape):
    inputs = {"x": shape}
    model = single_node_model(op, inputs)
    feeds = random_inputs(inputs)
    _check_fold(model, feeds, op, {}, 17)
    assert_matches(model, feeds)


def test_maxpool_indices_not_supported():
    import infer
    from infer.errors import UnsupportedModelError

    model = single_node_model("MaxPool", {"x": X}, n_outputs=2, kernel_shape=[2, 2])
    with pytest.raises(UnsupportedModelError, match="Indices"):
        infer.load(model).run(random_inputs({"x": X})["x"])

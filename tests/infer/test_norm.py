import numpy as np
import pytest

from infer.graph import Node
from infer.ops import lookup

from .onnx_helpers import assert_matches, random_inputs, reference, single_node_model

pytestmark = pytest.mark.gpu

F = np.float32


def _check_fold(model, feeds, consts, op, order, attrs, opset):
    """The numpy `evaluate` (constant folding) matches onnxruntime too."""
    ref = reference(model, feeds)[0]
    node = Node(op, "n", order, ["y0"], dict(attrs))
    arrays = [feeds.get(n, consts.get(n)) if n else None for n in order]
    got = lookup(op, opset).evaluate(node, arrays, opset)[0]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4 * max(np.abs(ref).max(), 1e-6)


@pytest.mark.parametrize("shape", [(1, 5, 13, 17), (2, 8, 7), (3, 6), (1, 3, 4, 5, 6)])
def test_batchnorm_matches_onnxruntime(shape):
    rng = np.random.default_rng(4)
    c = shape[1]
    consts = {
        "scale": rng.standard_normal(c).astype(F),
        "b": rng.standard_normal(c).astype(F),
        "mean": rng.standard_normal(c).astype(F),
        "var": rng.uniform(0.2, 2.0, c).astype(F),
    }
    inputs = {"x": shape}
    model = single_node_model("BatchNormalization", inputs, consts, epsilon=1e-3)
    feeds = random_inputs(inputs)
    _check_fold(model, feeds, consts, "BatchNormalization", ["x", *consts], {"epsilon": 1e-3}, 17)
    assert_matches(model, feeds)


@pytest.mark.parametrize(
    "shape, offset",
    [
        ((1, 5, 13, 17), 0.0),
        ((1, 16, 64, 64), 0.0),
        ((2, 3, 31), 50.0),
        ((1, 6, 3, 5, 7), 0.0),
        ((1, 4, 300, 9), 3.0),
    ],
)
def test_instancenorm_matches_onnxruntime(shape, offset):
    rng = np.random.default_rng(5)
    c = shape[1]
    consts = {"scale": rng.standard_normal(c).astype(F), "b": rng.standard_normal(c).astype(F)}
    inputs = {"x": shape}
    model = single_node_model("InstanceNormalization", inputs, consts, epsilon=1e-5)
    feeds = {"x": random_inputs(inputs)["x"] * 2 + F(offset)}
    _check_fold(model, feeds, consts, "InstanceNormalization", ["x", *consts], {}, 17)
    assert_matches(model, feeds)


X = (1, 5, 13, 17)
REDUCE_CASES = {
    "space_keep": (X, [2, 3], 1, 13),
    "channels_keep": (X, [1], 1, 13),
    "channels_drop": ((2, 6, 5, 7), [1], 0, 13),
    "last_drop": (X, [-1], 0, 13),
    "batch_and_width": ((2, 5, 7, 9), [0, 3], 1, 13),
    "all_default": (X, None, 1, 13),
    "all_drop": (X, None, 0, 13),
    "large_space": ((1, 6, 40, 30), [2, 3], 1, 13),
    "large_drop_to_rank1": ((1, 3, 30, 40), [0, 2, 3], 0, 13),
    "opset18_input_axes": (X, [1, 3], 1, 18),
    "opset18_negative_axes_drop": ((2, 5, 7, 9), [-3, -1], 0, 18),
    "opset18_all": (X, None, 0, 18),
    "opset18_noop": (X, "noop", 1, 18),
}


@pytest.mark.parametrize("name", list(REDUCE_CASES))
def test_reduce_mean_matches_onnxruntime(name):
    shape, axes, keepdims, opset = REDUCE_CASES[name]
    inputs = {"x": shape}
    attrs, consts, order = {"keepdims": keepdims}, {}, ["x"]
    if axes == "noop":
        attrs["noop_with_empty_axes"] = 1
    elif axes is not None and opset >= 18:
        consts["axes"] = np.array(axes, np.int64)
        order.append("axes")
    elif axes is not None:
        attrs["axes"] = axes
    model = single_node_model("ReduceMean", inputs, consts, opset=opset, input_order=order, **attrs)
    feeds = random_inputs(inputs)
    _check_fold(model, feeds, consts, "ReduceMean", order, attrs, opset)
    assert_matches(model, feeds)


def test_batchnorm_training_mode_not_supported():
    import infer
    from infer.errors import UnsupportedModelError

    consts = {k: np.ones(5, F) for k in ("scale", "b", "mean", "var")}
    model = single_node_model("BatchNormalization", {"x": X}, consts, opset=15, training_mode=1)
    with pytest.raises(UnsupportedModelError, match="training"):
        infer.load(model).run(random_inputs({"x": X})["x"])

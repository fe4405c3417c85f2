"""Gather, Expand, Tile, Split, Squeeze / Unsqueeze on GPU tensors, and the reductions,
against onnxruntime at odd sizes (on images, and on row-major tensors made by a Transpose)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from .onnx_helpers import assert_matches, random_inputs, single_node_model

pytestmark = pytest.mark.gpu

SHAPE = (2, 5, 13, 11)


def i64(*v):
    return np.array(v, np.int64)


def check(op, inputs, consts=None, opset=17, order=None, **attrs):
    model = single_node_model(op, inputs, consts, opset=opset, input_order=order, **attrs)
    return assert_matches(model, random_inputs(inputs))


@pytest.mark.parametrize(
    "indices,axis",
    [
        (np.array(1, np.int64), 0),  # qkv[1]
        (np.array(-2, np.int64), 1),
        (i64(0, 2, 4), 1),  # a progression
        (i64(3, 0, 7, 7), 2),  # a table
        (np.array([[0, 1, 2], [6, 7, 8]], np.int64), 3),  # 2-D indices (nn.Unfold's)
    ],
)
def test_gather(indices, axis):
    check("Gather", {"x": SHAPE}, {"i": indices}, axis=axis)


@pytest.mark.parametrize(
    "shape,target",
    [((2, 5, 1, 11), (2, 5, 13, 11)), ((2, 5, 1, 11), (3, 2, 5, 1, 11)), ((1,), (13, 1))],
)
def test_expand(shape, target):
    check("Expand", {"x": shape}, {"s": np.array(target, np.int64)})


@pytest.mark.parametrize("reps", [(1, 2, 1, 3), (2, 1, 2, 1)])
def test_tile(reps):
    check("Tile", {"x": (1, 5, 7, 3)}, {"r": np.array(reps, np.int64)})


@pytest.mark.parametrize(
    "axis,split,outputs",
    [(1, (2, 3), 2), (3, (4, 4, 3), 3), (2, None, 2)],
)
def test_split(axis, split, outputs):
    consts = {"s": np.array(split, np.int64)} if split else {}
    model = single_node_model("Split", {"x": SHAPE}, consts, n_outputs=outputs, axis=axis)
    if split is None:  # opset 18: num_outputs, the last part smaller
        model = single_node_model(
            "Split", {"x": SHAPE}, opset=18, n_outputs=outputs, axis=axis, num_outputs=outputs
        )
    assert_matches(model, random_inputs({"x": SHAPE}))


@pytest.mark.parametrize(
    "op,axes", [("Unsqueeze", (0, 3)), ("Squeeze", (0,)), ("Unsqueeze", (-1,))]
)
def test_squeeze_unsqueeze_on_data(op, axes):
    shape = (1, 5, 13, 11)
    check(op, {"x": shape}, {"a": np.array(axes, np.int64)})


@pytest.mark.parametrize(
    "op",
    ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceL1", "ReduceSumSquare",
     "ReduceMean", "ReduceLogSumExp", "ReduceProd"],
)  # fmt: skip
@pytest.mark.parametrize("axes,keepdims", [((1,), 1), ((2, 3), 0), ((-1,), 1), ((0, 2), 1)])
def test_reduce(op, axes, keepdims):
    x = random_inputs({"x": SHAPE})["x"]
    if op == "ReduceProd":
        x = 1 + 0.05 * x
    model = single_node_model(
        op, {"x": SHAPE}, {"a": np.array(axes, np.int64)}, opset=18, keepdims=keepdims
    )
    assert_matches(model, {"x": x})


def test_reduce_on_row_major_tokens():
    """F.normalize over the last axis of (B, N, C) tokens: ReduceL2 on a row-major tensor."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
        helper.make_node("ReduceL2", ["t", "axes"], ["n"], keepdims=1),
        helper.make_node("Div", ["t", "n"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "normalize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 16, 37])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(i64(-1), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    assert_matches(model, random_inputs({"x": (3, 16, 37)}))

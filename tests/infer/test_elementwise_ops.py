"""Elementwise ops against onnxruntime at odd sizes: the math functions, constants of any
shape as operands (a scalar, a per-channel vector, SPAN's (1, 3, 1, 1) mean, a Linear's bias,
a full tensor: each read by the fast kernel or broadcast), comparisons and Where, Mod, Pow,
the variadic Sum / Mean / Max / Min; and `Constant` nodes anywhere in a graph."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import infer

from .onnx_helpers import assert_matches, random_inputs, reference, single_node_model

pytestmark = pytest.mark.gpu

SHAPE = (1, 5, 13, 11)


@pytest.mark.parametrize(
    "op",
    ["Sqrt", "Reciprocal", "Exp", "Log", "Neg", "Abs", "Erf", "Floor", "Ceil", "Round", "Sign",
     "Sin", "Cos", "Softsign", "Mish", "Selu", "Celu", "ThresholdedRelu", "Softplus"],
)  # fmt: skip
@pytest.mark.parametrize("shape", [SHAPE, (3, 37, 16), (29,)])
def test_unary(op, shape):
    x = random_inputs({"x": shape})["x"]
    if op in ("Sqrt", "Log", "Reciprocal"):
        x = np.abs(x) + 0.1  # their domain
    assert_matches(single_node_model(op, {"x": shape}, opset=18), {"x": x})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"])
@pytest.mark.parametrize(
    "const_shape",
    [(), (1, 5, 1, 1), (5, 1, 1), (1, 1, 1, 11), (11,), (13, 11), SHAPE],
    ids=["scalar", "channel", "channel3", "last", "last1", "plane", "full"],
)
@pytest.mark.parametrize("const_first", [False, True])
def test_constant_operand_of_any_shape(op, const_shape, const_first):
    rng = np.random.default_rng(1)
    c = rng.uniform(0.5, 2.0, const_shape).astype(np.float32)
    order = ["c", "x"] if const_first else ["x", "c"]
    model = single_node_model(op, {"x": SHAPE}, {"c": c}, input_order=order)
    x = random_inputs({"x": SHAPE})["x"]
    if op == "Pow":
        x = np.abs(x) + 0.1
    assert_matches(model, {"x": x})


@pytest.mark.parametrize("shape", [(3, 37, 16), (2, 7, 9)])
def test_constant_operand_of_token_tensors(shape):
    """A (C,) bias on (B, N, C) tokens: row-major, the constant along the innermost axis."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),  # rows layout
        helper.make_node("Add", ["t", "bias"], ["y"]),
    ]
    bias = np.arange(shape[1], dtype=np.float32)
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    assert_matches(model, random_inputs({"x": shape}))


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_comparison_then_where(op):
    nodes = [
        helper.make_node(op, ["a", "b"], ["m"]),
        helper.make_node("Where", ["m", "a", "fill"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, list(SHAPE)),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 5, 1, 11]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(-100.0, np.float32), "fill")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    feeds = random_inputs({"a": SHAPE, "b": (1, 5, 1, 11)})
    feeds["b"][:, :, 0, :3] = feeds["a"][:, :, 0, :3]  # some equal elements
    assert_matches(model, feeds)


def test_where_with_a_constant_condition():
    cond = np.random.default_rng(2).random(SHAPE[1:]) > 0.5
    model = single_node_model(
        "Where", {"a": SHAPE, "b": (11,)}, {"c": cond}, input_order=["c", "a", "b"]
    )
    assert_matches(model, random_inputs({"a": SHAPE, "b": (11,)}))


@pytest.mark.parametrize("fmod", [1])  # onnxruntime has float fmod=0 from opset 28 only
def test_mod(fmod):
    feeds = random_inputs({"a": SHAPE, "b": SHAPE})
    feeds["a"] *= 10
    feeds["b"] = np.where(np.abs(feeds["b"]) < 0.1, 0.5, feeds["b"])
    assert_matches(single_node_model("Mod", {"a": SHAPE, "b": SHAPE}, fmod=fmod), feeds)


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_variadic(op, n):
    inputs = {f"x{i}": SHAPE if i % 2 == 0 else (1, 5, 1, 11) for i in range(n)}
    assert_matches(single_node_model(op, inputs, opset=13), random_inputs(inputs))


def test_constant_nodes_anywhere():
    """Constant nodes (not initializers) as an elementwise operand, a reshape target and a
    slice bound, in the middle of the graph: SPAN's mean and x255 are exported like this."""
    mean = helper.make_tensor("mean", TensorProto.FLOAT, [1, 3, 1, 1], [0.4, 0.5, 0.6])
    nodes = [
        helper.make_node("Constant", [], ["m"], value=mean),
        helper.make_node("Sub", ["x", "m"], ["a"]),
        helper.make_node("Constant", [], ["k"], value_float=255.0),
        helper.make_node("Mul", ["a", "k"], ["b"]),
        helper.make_node("Constant", [], ["shape"], value_ints=[1, 3, -1]),
        helper.make_node("Reshape", ["b", "shape"], ["c"]),
        helper.make_node("Constant", [], ["ends"], value_ints=[100]),
        helper.make_node("Constant", [], ["starts"], value_ints=[7]),
        helper.make_node("Constant", [], ["axes"], value_ints=[2]),
        helper.make_node("Slice", ["c", "starts", "ends", "axes"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 13])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    feeds = random_inputs({"x": (1, 3, 9, 13)})
    assert_matches(model, feeds)
    (ref,) = reference(model, feeds)
    assert ref.shape == (1, 3, 100 - 7)
    assert isinstance(infer.load(model), infer.Model)

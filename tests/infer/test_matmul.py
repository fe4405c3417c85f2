"""MatMul, Gemm and Einsum against onnxruntime at odd sizes: 2-D to 4-D, broadcast batches,
vectors, transposes, constant weights (nn.Linear) and the einsum patterns the zoo uses; and
the strided views: a product reading `qkv[i]` of a permuted tensor and writing its output
transposed needs no copy kernel."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import infer

from .onnx_helpers import assert_matches, random_inputs, single_node_model

pytestmark = pytest.mark.gpu


def check(op, inputs, consts=None, opset=17, **attrs):
    model = single_node_model(op, inputs, consts, opset=opset, **attrs)
    return assert_matches(model, random_inputs(inputs))


@pytest.mark.parametrize(
    "a,b",
    [
        ((7, 5), (5, 9)),
        ((3, 7, 5), (3, 5, 9)),
        ((2, 3, 13, 8), (2, 3, 8, 13)),
        ((2, 3, 13, 8), (8, 6)),  # a shared weight
        ((1, 3, 5, 7), (4, 1, 7, 2)),  # broadcast batches
        ((5,), (3, 5, 7)),  # a row vector
        ((3, 7, 5), (5,)),  # a column vector
        ((6,), (6,)),
    ],
)
def test_matmul(a, b):
    check("MatMul", {"a": a, "b": b})


def test_matmul_constant_weight_and_bias_add():
    """nn.Linear on tokens: MatMul by a constant, then + bias (folded into one kernel)."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 48)).astype(np.float32)
    bias = rng.standard_normal(48).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Add", ["bias", "h"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 37, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    assert_matches(model, random_inputs({"x": (3, 37, 16)}))
    ops = [n.op_type for n in infer.load(model).program({"x": (3, 37, 16)}).graph.nodes]
    assert ops == ["MatMul"]


@pytest.mark.parametrize(
    "a,b,attrs,c",
    [
        ((7, 5), (5, 9), {}, None),
        ((5, 7), (5, 9), {"transA": 1}, (9,)),
        ((7, 5), (9, 5), {"transB": 1, "alpha": 0.5, "beta": 2.0}, (7, 9)),
        ((5, 7), (9, 5), {"transA": 1, "transB": 1}, (1, 9)),
    ],
)
def test_gemm(a, b, attrs, c):
    inputs = {"a": a, "b": b, **({"c": c} if c else {})}
    check("Gemm", inputs, **attrs)


@pytest.mark.parametrize(
    "equation,a,b",
    [
        ("bhid,bhjd->bhij", (2, 3, 13, 8), (2, 3, 11, 8)),  # Omni-SR's q k^T
        ("bhij,bhjd->bhid", (2, 3, 13, 11), (2, 3, 11, 8)),  # and attn v
        ("ij,jk->ik", (7, 5), (5, 9)),
        ("bij,bkj->bik", (3, 7, 5), (3, 9, 5)),
        ("i,i", (6,), (6,)),
        ("ik,kj->ji", (7, 5), (5, 9)),  # the output transposed
    ],
)
def test_einsum(equation, a, b):
    check("Einsum", {"a": a, "b": b}, opset=17, equation=equation)


def test_einsum_beyond_a_product_is_refused_by_name():
    model = single_node_model("Einsum", {"a": (3, 5)}, equation="ij->ji")
    with pytest.raises(infer.UnsupportedModelError, match="Einsum.*1 operands"):
        infer.load(model).run(random_inputs({"a": (3, 5)})["a"])


def test_window_attention_views_need_no_copies():
    """qkv (B, N, 3, H, d) -> permute (3, B, H, N, d) -> q, k, v = qkv[0..2] -> q @ k^T and
    attn @ v -> transpose(1, 2): the products read and write through strides (the
    Transposes and Gathers are gone from the program) and match onnxruntime."""
    b, n, h, d = 5, 13, 2, 8
    nodes = [
        helper.make_node("Transpose", ["qkv"], ["t"], perm=[2, 0, 3, 1, 4]),
        helper.make_node("Gather", ["t", "i0"], ["q"], axis=0),
        helper.make_node("Gather", ["t", "i1"], ["k"], axis=0),
        helper.make_node("Gather", ["t", "i2"], ["v"], axis=0),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Relu", ["s"], ["p"]),  # not a softmax: the products stay apart
        helper.make_node("MatMul", ["p", "v"], ["o"]),
        helper.make_node("Transpose", ["o"], ["y"], perm=[0, 2, 1, 3]),
    ]
    consts = [numpy_helper.from_array(np.array(i, np.int64), f"i{i}") for i in range(3)]
    graph = helper.make_graph(
        nodes,
        "views",
        [helper.make_tensor_value_info("qkv", TensorProto.FLOAT, [b, n, 3, h, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    assert_matches(model, random_inputs({"qkv": (b, n, 3, h, d)}))
    program = infer.load(model).program({"qkv": (b, n, 3, h, d)})
    ops = [node.op_type for node in program.graph.nodes]
    assert "Gather" not in ops and ops.count("Transpose") == 1, ops  # the output's, kept

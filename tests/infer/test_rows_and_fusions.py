"""The row kernels (LayerNormalization, Softmax, LogSoftmax) and the fusions of the blocks
users bring, against onnxruntime at odd sizes, with the program checked for the fusion:

- the channel LayerNorm written out (NAFNet's LayerNorm2d) is one LayerNormAxes node;
- x * sigmoid(x) after a conv is that conv's activation (SiLU);
- attention (MatMul, scale, bias, Softmax, MatMul) is one Attention node, also with the
  shifted-window mask added across a Reshape pair; and stays three kernels when the keys do
  not fit in workgroup memory.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import infer

from .onnx_helpers import assert_matches, random_inputs, single_node_model

pytestmark = pytest.mark.gpu


def model_of(nodes, inputs, consts, opset=17):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(s)) for k, s in inputs.items()],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def program_ops(model: onnx.ModelProto, inputs) -> Counter:
    return Counter(n.op_type for n in infer.load(model).program(inputs).graph.nodes)


# ---- row kernels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,axis",
    [((2, 37, 16), -1), ((1, 5, 7, 9), 1), ((3, 11, 13), -2), ((1, 6, 5, 3), 2)],
)
def test_layer_normalization(shape, axis):
    rng = np.random.default_rng(0)
    norm = shape[axis:] if axis >= 0 else shape[axis:]
    consts = {
        "w": rng.uniform(0.5, 1.5, norm).astype(np.float32),
        "b": rng.normal(0, 0.2, norm).astype(np.float32),
    }
    model = single_node_model(
        "LayerNormalization", {"x": shape}, consts, opset=17, axis=axis, epsilon=1e-5
    )
    assert_matches(model, random_inputs({"x": shape}))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(
    "shape,axis,opset",
    [((3, 5, 37), -1, 13), ((2, 3, 7, 9), 1, 13), ((2, 3, 7, 9), 1, 11), ((4, 65), 0, 13)],
)
def test_softmax(op, shape, axis, opset):
    model = single_node_model(op, {"x": shape}, opset=opset, axis=axis)
    assert_matches(model, random_inputs({"x": shape}))


# ---- the channel LayerNorm written out ------------------------------------------------------


def written_layernorm(c: int, opset: int) -> onnx.ModelProto:
    """NAFNet's LayerNorm2d as exported: mean over channels, (x - u)^2 mean, sqrt, divide,
    then weight and bias of shape (1, C, 1, 1)."""
    rng = np.random.default_rng(2)
    axes_attr = {} if opset >= 18 else {"axes": [1]}
    axes_in = ["axes"] if opset >= 18 else []
    nodes = [
        helper.make_node("ReduceMean", ["x", *axes_in], ["u"], keepdims=1, **axes_attr),
        helper.make_node("Sub", ["x", "u"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["d2"]),
        helper.make_node("ReduceMean", ["d2", *axes_in], ["s"], keepdims=1, **axes_attr),
        helper.make_node("Add", ["s", "eps"], ["se"]),
        helper.make_node("Sqrt", ["se"], ["r"]),
        helper.make_node("Div", ["d", "r"], ["n"]),
        helper.make_node("Mul", ["w", "n"], ["nw"]),
        helper.make_node("Add", ["nw", "b"], ["y"]),
    ]
    consts = {
        "two": np.array(2.0, np.float32),
        "eps": np.array(1e-6, np.float32),
        "w": rng.uniform(0.5, 1.5, (1, c, 1, 1)).astype(np.float32),
        "b": rng.normal(0, 0.2, (1, c, 1, 1)).astype(np.float32),
    }
    if opset >= 18:
        consts["axes"] = np.array([1], np.int64)
    return model_of(nodes, {"x": (1, c, 13, 11)}, consts, opset)


@pytest.mark.parametrize("c,opset", [(16, 17), (6, 18)])
def test_written_layernorm_is_one_kernel(c, opset):
    model = written_layernorm(c, opset)
    assert_matches(model, random_inputs({"x": (1, c, 13, 11)}))
    assert program_ops(model, {"x": (1, c, 13, 11)}) == Counter({"LayerNormAxes": 1})


def test_silu_after_a_conv_is_its_activation():
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Mul", ["c", "s"], ["y"]),
    ]
    consts = {"w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32)}
    model = model_of(nodes, {"x": (1, 3, 17, 13)}, consts)
    assert_matches(model, random_inputs({"x": (1, 3, 17, 13)}))
    program = infer.load(model).program({"x": (1, 3, 17, 13)})
    assert [n.op_type for n in program.graph.nodes] == ["Conv"]
    assert program.graph.nodes[0].attrs["_activation"]["kind"] == "SiLU"


# ---- attention ---------------------------------------------------------------------------


def attention(bw: int, heads: int, n: int, d: int, nk: int | None = None, mask: bool = False):
    """q k^T * scale + bias (+ a (nW, 1, N, N) mask added on a (1, nW, heads, N, N) view, as
    SwinIR's shifted windows do) -> Softmax -> @ v."""
    rng = np.random.default_rng(4)
    nk = nk or n
    nodes = [
        helper.make_node("Mul", ["q", "scale"], ["qs"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["qs", "kt"], ["s"]),
        helper.make_node("Add", ["s", "bias"], ["sb"]),
    ]
    consts = {
        "scale": np.array(d**-0.5, np.float32),
        "bias": rng.normal(0, 0.5, (1, heads, n, nk)).astype(np.float32),
    }
    last = "sb"
    if mask:
        nodes += [
            helper.make_node("Reshape", ["sb", "split"], ["s5"]),
            helper.make_node("Add", ["s5", "mask"], ["sm"]),
            helper.make_node("Reshape", ["sm", "merge"], ["sm4"]),
        ]
        consts["split"] = np.array([1, bw, heads, n, nk], np.int64)
        consts["merge"] = np.array([-1, heads, n, nk], np.int64)
        m = np.where(rng.random((bw, 1, n, nk)) < 0.3, -100.0, 0.0).astype(np.float32)
        consts["mask"] = m[None]
        last = "sm4"
    nodes += [
        helper.make_node("Softmax", [last], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    inputs = {"q": (bw, heads, n, d), "k": (bw, heads, nk, d), "v": (bw, heads, nk, d)}
    return model_of(nodes, inputs, consts), inputs


@pytest.mark.parametrize(
    "bw,heads,n,d,nk,mask",
    [(3, 2, 64, 8, None, False), (5, 3, 49, 16, None, True), (2, 2, 37, 8, 81, False)],
)
def test_attention_is_one_kernel(bw, heads, n, d, nk, mask):
    model, inputs = attention(bw, heads, n, d, nk, mask)
    assert_matches(model, random_inputs(inputs))
    assert program_ops(model, inputs) == Counter({"Attention": 1})


def test_attention_too_big_for_workgroup_memory_stays_three_kernels():
    model, inputs = attention(2, 2, 16, 32, nk=200)
    assert_matches(model, random_inputs(inputs))
    ops = program_ops(model, inputs)
    assert ops["Attention"] == 0 and ops["Softmax"] == 1 and ops["MatMul"] == 2

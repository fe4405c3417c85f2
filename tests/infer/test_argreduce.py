"""ArgMin / ArgMax and ScatterElements on GPU tensors against onnxruntime (ties, keepdims,
select_last_index, negative axes and indices, every reduction), and the vector-quantised
restorers' codebook pick (ArgMin, Unsqueeze, one-hot ScatterElements, MatMul) that the
three VQ classes of spandrel's registry export."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import infer

from .onnx_helpers import assert_matches, reference

pytestmark = pytest.mark.gpu


def _model(nodes, inputs, outputs, constants=None, opset=18) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(s)) for k, s in inputs.items()],
        [helper.make_tensor_value_info(k, t, None) for k, t in outputs.items()],
        [numpy_helper.from_array(v, k) for k, v in (constants or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _tied(shape, seed=0) -> np.ndarray:
    """Values from {-1, 0, 1, 2}: most rows hold ties for the best value."""
    return np.random.default_rng(seed).integers(-1, 3, shape).astype(np.float32)


def _arg_model(op, shape, **attrs):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    return _model([node], {"x": shape}, {"y": TensorProto.INT64})


@pytest.mark.parametrize("op", ["ArgMin", "ArgMax"])
@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("keep", [0, 1])
@pytest.mark.parametrize("shape,axis", [((1, 5, 3, 7), 1), ((2, 9, 6), -1), ((13, 4), 0)])
def test_arg_matches_onnxruntime_with_ties(op, last, keep, shape, axis):
    model = _arg_model(op, shape, axis=axis, keepdims=keep, select_last_index=last)
    for x in (_tied(shape), np.random.default_rng(1).standard_normal(shape).astype(np.float32)):
        (ref,) = reference(model, {"x": x})
        got = infer.load(model).run(x)
        assert got.dtype == np.int64 and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)


def test_arg_tie_rule_is_not_a_coincidence():
    """A row of equal values: the first index, or the last with select_last_index."""
    x = np.ones((1, 6, 2, 2), np.float32)
    first = infer.load(_arg_model("ArgMin", x.shape, axis=1)).run(x)
    last = infer.load(_arg_model("ArgMax", x.shape, axis=1, select_last_index=1)).run(x)
    assert (first == 0).all() and (last == 5).all()


def test_arg_refuses_long_axes_in_fp16_by_name():
    model = _arg_model("ArgMax", (1, 3000), axis=1)
    with pytest.raises(infer.UnsupportedModelError, match="ArgMax.*fp16"):
        infer.load(model, precision="fp16").run(np.zeros((1, 3000), np.float32))


def _scatter_from_argmin(data_shape, axis, reduction, n_idx):
    """indices = ArgMin over a GPU tensor (so nothing folds), data and updates GPU inputs."""
    ishape = list(data_shape)
    ishape[axis] = n_idx
    pick_shape = [*ishape[:axis], data_shape[axis], *ishape[axis:]]
    nodes = [
        helper.make_node("ArgMin", ["p"], ["i"], axis=axis, keepdims=0),
        helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=axis,
                         reduction=reduction),
    ]  # fmt: skip
    ins = {"x": tuple(data_shape), "p": tuple(pick_shape), "u": tuple(ishape)}
    return _model(nodes, ins, {"y": TensorProto.FLOAT}), ins


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("data_shape,axis,n_idx", [((2, 5, 7), 1, 3), ((1, 4, 3, 6), 3, 1)])
def test_scatter_elements_with_gpu_indices(reduction, data_shape, axis, n_idx):
    model, ins = _scatter_from_argmin(data_shape, axis, reduction, n_idx)
    rng = np.random.default_rng(3)
    feeds = {k: rng.standard_normal(s).astype(np.float32) for k, s in ins.items()}
    if reduction == "none":  # duplicate indices have no defined order: make them distinct
        pick = np.full(ins["p"], 1.0, np.float32)
        for j in range(n_idx):
            np.put_along_axis(pick, np.full((*ins["u"][:axis], 1, *ins["u"][axis:]), j), 0.0,
                              axis)  # fmt: skip
        feeds["p"] = pick  # ArgMin of the j-th slice is the first 0: index j of each row
    assert_matches(model, feeds)


def test_scatter_elements_constant_indices_negative_and_smaller_than_data():
    """Indices a constant (negative ones count from the end), covering part of the data."""
    idx = np.array([[-1, 0], [2, -3]], np.int64)
    node = helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=1)
    model = _model([node], {"x": (3, 4), "u": (2, 2)}, {"y": TensorProto.FLOAT}, {"i": idx})
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32),
             "u": rng.standard_normal((2, 2)).astype(np.float32)}  # fmt: skip
    assert_matches(model, feeds)


def test_vq_codebook_pick_runs_as_one_argmin():
    """RestoreFormer's quantiser as torch exports it: distances, ArgMin without keepdims,
    Unsqueeze, a one-hot ScatterElements into zeros, MatMul with the codebook."""
    n, k, d = 24, 16, 8
    rng = np.random.default_rng(5)
    code = rng.standard_normal((k, d)).astype(np.float32)
    c = {"code_t": code.T.copy(), "code": code, "zeros": np.zeros((n, k), np.float32),
         "ones": np.ones((n, 1), np.float32), "ax": np.array([1], np.int64),
         "two": np.array([-2.0], np.float32), "sq": (code**2).sum(1)}  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["z", "code_t"], ["zc"]),
        helper.make_node("Mul", ["zc", "two"], ["zc2"]),
        helper.make_node("Add", ["zc2", "sq"], ["dist"]),
        helper.make_node("ArgMin", ["dist"], ["i"], axis=1, keepdims=0),
        helper.make_node("Unsqueeze", ["i", "ax"], ["i1"]),
        helper.make_node("ScatterElements", ["zeros", "i1", "ones"], ["hot"], axis=1),
        helper.make_node("MatMul", ["hot", "code"], ["y"]),
    ]
    model = _model(nodes, {"z": (n, d)}, {"y": TensorProto.FLOAT}, c)
    z = rng.standard_normal((n, d)).astype(np.float32)
    got = assert_matches(model, {"z": z}, rtol=1e-6)[0]
    assert {tuple(r) for r in got} <= {tuple(r) for r in code}  # every row a codebook entry
    ops = [nd.op_type for nd in infer.load(model).program({"z": (n, d)}).graph.nodes]
    assert "Unsqueeze" not in ops and ops.count("ArgMin") == 1

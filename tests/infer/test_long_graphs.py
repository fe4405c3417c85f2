"""A model of 50,000 nodes (a fuzzer's, or a hostile file under the node cap) compiles in
linear time: the rewriting passes once took quadratic time (a list lookup or a consumers map
per node: 4,000 nodes took 66 s, 50,000 would take hours). The bound is a pytest timeout, not
a timed assertion: it fails only for a return of the quadratic passes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import infer

pytestmark = [pytest.mark.slow]


def _chain(n: int) -> onnx.ModelProto:
    nodes, cur = [], "x"
    ops = ("Mul", "Identity", "Relu", "Sigmoid", "Mul")
    for k in range(n):
        op = ops[k % len(ops)]
        out = f"t{k}"
        if op == "Mul" and k % len(ops) == 4:  # x * sigmoid(x): SiLU
            nodes.append(helper.make_node("Mul", [f"t{k - 2}", cur], [out]))
        else:
            nodes.append(helper.make_node(op, [cur, "c"] if op == "Mul" else [cur], [out]))
        cur = out
    c = numpy_helper.from_array(np.full((1,), 1.0001, np.float32), "c")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph(nodes, "chain", [x], [y], [c])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.timeout(180)
def test_a_50000_node_chain_compiles_in_linear_time(tmp_path):
    path = tmp_path / "chain.onnx"
    onnx.save(_chain(50_000), str(path))
    model = infer.load(str(path))
    program = model.program({model.inputs[0]: (1, 3, 8, 8)}, {})
    kinds = [d.label.split("/")[-1] for d in program.dispatches][:8]
    # per 5 nodes: Mul, (Identity gone), Relu, and Sigmoid * x fused as one SiLU
    assert len(program.dispatches) == 50_000 // 5 * 3, kinds

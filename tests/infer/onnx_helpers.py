"""Build single-node ONNX models and compare the engine with onnxruntime on random inputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import infer

RTOL = 1e-4


def single_node_model(
    op_type: str,
    inputs: dict[str, tuple[int, ...]],
    constants: dict[str, np.ndarray] | None = None,
    opset: int = 17,
    n_outputs: int = 1,
    input_order: list[str] | None = None,
    **attrs,
) -> onnx.ModelProto:
    """A model with one node; `input_order` lists node inputs ("" for an omitted optional)."""
    constants = constants or {}
    order = input_order or [*inputs, *constants]
    outputs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, order, outputs, **attrs)
    graph = helper.make_graph(
        [node],
        op_type.lower(),
        [
            helper.make_tensor_value_info(k, onnx.TensorProto.FLOAT, list(s))
            for k, s in inputs.items()
        ],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 9)
    return model


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def random_inputs(inputs: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in inputs.items()}


def assert_matches(model: onnx.ModelProto, feeds: dict[str, np.ndarray], rtol: float = RTOL):
    """Run on the GPU and in onnxruntime; relative error (to the output's scale) under rtol."""
    ref = reference(model, feeds)
    got = infer.load(model).run(feeds if len(feeds) > 1 else next(iter(feeds.values())))
    got = list(got.values()) if isinstance(got, dict) else [got]
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        assert g.shape == r.shape, f"shape {g.shape} != reference {r.shape}"
        scale = max(float(np.abs(r).max()), 1e-6)
        err = float(np.abs(g - r).max()) / scale
        assert err <= rtol, f"max relative error {err:.2e} > {rtol:.0e}"
    return got

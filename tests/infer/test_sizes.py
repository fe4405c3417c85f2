"""One compile per model, not per size: a model compiled at one input size and run at
another makes no new conv or add pipeline (the sizes are read from uniforms; only the small
copies that pay for baked sizes are compiled again), and both sizes match onnxruntime.
Issue 27: each new size was new WGSL, so new machine code (7-20 s per model on lavapipe)
whenever a stream's scale adapted or a window was resized."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import infer
from tests.infer.onnx_helpers import reference

# kernels whose code is the same at every frame size (the convs, the same-shape binary ops)
SIZE_FREE = {"conv2d.wgsl", "conv_winograd.wgsl", "binary_same.wgsl"}

pytestmark = pytest.mark.slow  # compiles a small net's kernels on lavapipe (~10 s)


def _sr_net() -> onnx.ModelProto:
    """The shape of the bundled upscalers, small: convs with PReLU and ReLU, a concat along
    channels (a dense block), a pixel shuffle and a bicubic skip added to it."""
    rng = np.random.default_rng(7)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    inits = {
        "w1": w(8, 3, 3, 3),
        "b1": w(8),
        "s1": np.abs(w(8, 1, 1)),
        "w2": w(8, 8, 3, 3),
        "b2": w(8),
        "w3": w(12, 16, 3, 3),
        "b3": w(12),
        "scales": np.array([1, 1, 2, 2], np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["c1", "s1"], ["h1"]),
        helper.make_node("Conv", ["h1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["h2"]),
        helper.make_node("Concat", ["h1", "h2"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1]),
        helper.make_node("DepthToSpace", ["c3"], ["up"], blocksize=2, mode="CRD"),
        helper.make_node(
            "Resize",
            ["x", "", "scales"],
            ["skip"],
            mode="cubic",
            coordinate_transformation_mode="half_pixel",
        ),
        helper.make_node("Add", ["up", "skip"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "sr",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    return model


@pytest.mark.parametrize("kernels", ["direct", "winograd2-sg"])
def test_second_size_compiles_nothing(kernels: str) -> None:
    proto = _sr_net()
    model = infer.load(proto, kernels=kernels)
    device = model.device
    pipelines: list[set[int]] = []
    for k, (h, w) in enumerate([(9, 13), (14, 22)]):
        x = np.random.default_rng(k).standard_normal((1, 3, h, w)).astype(np.float32)
        before = device.cached_pipelines
        got = model.run(x)
        assert isinstance(got, np.ndarray)
        (ref,) = reference(proto, {"x": x})
        assert got.shape == ref.shape == (1, 3, 2 * h, 2 * w)
        err = float(np.abs(got - ref).max()) / float(np.abs(ref).max())
        assert err <= 1e-3, f"{h}x{w}: max relative error {err:.2e}"
        exe = model.executable({"x": x})
        steps = list(zip(exe.program.dispatches, exe.steps, strict=True))
        pipelines.append({id(p) for d, (p, _, _) in steps if d.template in SIZE_FREE})
        baked = {id(p) for d, (p, _, _) in steps if d.template not in SIZE_FREE}
        if k:
            # the second size reuses every conv and add pipeline of the first and compiles
            # only the index-decoding copies that keep their sizes baked in (they pay:
            # infer.ops.common.DECODE_AT_RUN_TIME)
            assert pipelines[1] == pipelines[0]
            assert device.cached_pipelines - before <= len(baked) <= 3
    if kernels == "winograd2-sg" and device.limits.get("subgroup-size", 0) >= 8:
        variants = {d.variant for d in exe.program.dispatches}
        assert "winograd2-sg" in variants

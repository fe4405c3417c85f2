"""Hostile models fail fast and by name: caps on file size, node count, weights (external data
included), folded and input tensor sizes, each a ModelError naming the cap, before the memory
is spent."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import infer
from infer import Caps
from infer.compile import specialise
from infer.graph import from_onnx, load_proto
from infer.ops.registry import Value

from .onnx_helpers import single_node_model

LIMITS = {"max-storage-buffer-binding-size": 128 << 20, "max-storage-buffers-per-shader-stage": 8}


def _conv(c: int = 8) -> onnx.ModelProto:
    w = np.random.default_rng(0).standard_normal((c, 3, 3, 3)).astype(np.float32)
    return single_node_model("Conv", {"x": (1, 3, "h", "w")}, {"w": w}, pads=[1, 1, 1, 1])


def test_a_file_over_the_size_cap_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_conv(), path)
    with pytest.raises(infer.ModelError, match="over the cap max_file_bytes"):
        load_proto(path, Caps(max_file_bytes=100))


def test_node_count_and_weight_caps():
    with pytest.raises(infer.ModelError, match="node count is 1, over the cap max_nodes = 0"):
        from_onnx(_conv(), Caps(max_nodes=0))
    with pytest.raises(infer.ModelError, match="max_initializer_bytes"):
        from_onnx(_conv(64), Caps(max_initializer_bytes=1000))
    with pytest.raises(infer.ModelError, match="initializer 'w' of shape .* max_tensor_bytes"):
        from_onnx(_conv(64), Caps(max_tensor_bytes=1000))


def test_external_data_is_measured_before_it_is_read_and_must_stay_beside_the_model(tmp_path):
    model = _conv(16)
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)  # fmt: skip
    assert load_proto(path).graph.initializer[0].dims == [16, 3, 3, 3]
    with pytest.raises(infer.ModelError, match="external data .* max_initializer_bytes"):
        load_proto(path, Caps(max_initializer_bytes=100))
    # a location outside the model's folder (onnx >= 1.17 refuses it) names the problem
    evil = onnx.load(str(path), load_external_data=False)
    for entry in evil.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../../../../etc/passwd"
    onnx.save(evil, tmp_path / "evil.onnx")
    with pytest.raises(infer.ModelError, match="external data cannot be read"):
        load_proto(tmp_path / "evil.onnx")


def _chain(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    "make",
    [
        # ConstantOfShape to 10^12 floats
        lambda: [helper.make_node("ConstantOfShape", ["shape"], ["big"], name="cos")],
        # Range to 10^11 elements
        lambda: [helper.make_node("Range", ["zero", "limit", "one"], ["big"], name="range")],
    ],
)
def test_a_fold_that_would_build_a_huge_tensor_is_refused_before_building_it(make):
    inits = [
        numpy_helper.from_array(np.array([1_000_000, 1_000_000], np.int64), "shape"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(10**11, np.int64), "limit"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
    ]
    nodes = [*make(), helper.make_node("Add", ["x", "x"], ["y"], name="add")]
    graph = from_onnx(_chain(nodes, inits))
    t0 = time.perf_counter()
    with pytest.raises(infer.ModelError, match="max_tensor_bytes"):
        specialise(graph, {"x": Value((1, 3, 8, 8))}, LIMITS)
    assert time.perf_counter() - t0 < 5  # refused, not computed


@pytest.mark.gpu
def test_an_input_over_the_tensor_cap_is_refused_before_any_gpu_work():
    model = infer.load(_conv(), caps=Caps(max_tensor_bytes=1 << 20))
    with pytest.raises(infer.ModelError, match="input 'x' of shape .* max_tensor_bytes"):
        model.program({"x": (1, 3, 1080, 1920)})
    with pytest.raises(infer.ModelError, match="max_tensor_bytes"):
        model.run(np.zeros((1, 3, 400, 400), np.float32))
    assert model.run(np.zeros((1, 3, 20, 20), np.float32)).shape == (1, 8, 20, 20)

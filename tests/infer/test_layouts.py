"""Which layout each tensor gets (passes.layouts), and that either choice computes the same:
a convnet stays images; a transformer block's tokens are row-major between the Reshape after
one conv and the Reshape before the next, where a Reshape is a view (no kernel, one buffer);
storing everything as images (token_layout="image") gives the same output."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import infer
from infer.graph import from_onnx
from infer.layout import IMAGE, ROWS
from infer.model import Model

from .onnx_helpers import assert_matches, random_inputs

pytestmark = pytest.mark.gpu

C, H, W = 6, 9, 7


def token_block():
    """conv -> flatten(2).transpose(1, 2) -> LayerNorm -> Linear -> GELU -> view(B, H, W, C)
    -> permute -> conv: the shape of a SwinIR stage."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Reshape", ["c1", "flat"], ["f"], name="flatten"),
        helper.make_node("Transpose", ["f"], ["tokens"], perm=[0, 2, 1], name="to_tokens"),
        helper.make_node("LayerNormalization", ["tokens", "g", "b"], ["n"], axis=-1, name="ln"),
        helper.make_node("MatMul", ["n", "lin"], ["h"], name="linear"),
        helper.make_node("Gelu", ["h"], ["a"], name="gelu"),
        helper.make_node("Reshape", ["a", "grid"], ["hw"], name="view_hw"),
        helper.make_node("Transpose", ["hw"], ["chw"], perm=[0, 3, 1, 2], name="to_image"),
        helper.make_node("Conv", ["chw", "w2"], ["y"], pads=[1, 1, 1, 1], name="conv2"),
    ]
    consts = {
        "w1": rng.standard_normal((C, 3, 3, 3)).astype(np.float32),
        "flat": np.array([1, C, H * W], np.int64),
        "g": rng.uniform(0.5, 1.5, C).astype(np.float32),
        "b": rng.normal(0, 0.2, C).astype(np.float32),
        "lin": rng.standard_normal((C, C)).astype(np.float32),
        "grid": np.array([1, H, W, C], np.int64),
        "w2": rng.standard_normal((3, C, 3, 3)).astype(np.float32),
    }
    graph = helper.make_graph(
        nodes,
        "tokens",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    return model


def test_token_path_is_row_major_between_the_convs():
    model = token_block()
    assert_matches(model, random_inputs({"x": (1, 3, H, W)}))
    program = infer.load(model).program({"x": (1, 3, H, W)})
    layout = {name: v.layout for name, v in program.values.items() if v.const is None}
    assert layout["x"] == layout["c1"] == layout["y"] == IMAGE
    assert layout["tokens"] == layout["n"] == layout["a"] == ROWS  # "a": the Linear + GELU
    assert layout["chw"] == IMAGE  # written as an image: the conv reads it


def test_a_reshape_of_a_row_major_tensor_is_a_view():
    program = infer.load(token_block()).program({"x": (1, 3, H, W)})
    assert program.aliases.get("hw") == program.root("a")  # view_hw: the same buffer
    assert not [d for d in program.dispatches if d.label == "view_hw"]


def test_a_convnet_stays_images():
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Sub", ["s", "half"], ["a"]),
        helper.make_node("Mul", ["c", "a"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(rng.standard_normal((C, 3, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    program = infer.load(model).program({"x": (1, 3, H, W)})
    assert {v.layout for v in program.values.values() if v.const is None} == {IMAGE}


def test_everything_as_images_gives_the_same_output():
    model = token_block()
    x = random_inputs({"x": (1, 3, H, W)})["x"]
    rows = infer.load(model)
    images = Model(from_onnx(model), rows.device, token_layout=IMAGE)
    assert {v.layout for v in images.program({"x": x.shape}).values.values()} == {IMAGE}
    np.testing.assert_allclose(images.run(x), rows.run(x), rtol=1e-5, atol=1e-5)

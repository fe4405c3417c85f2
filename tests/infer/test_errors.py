"""What users see when a model cannot run: engine errors that name the problem, raised early."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import infer
import infer.model

from .onnx_helpers import single_node_model


def _model_with_unsupported_ops() -> onnx.ModelProto:
    """conv -> FooBar -> FooBar -> LSTM: two unknown op types, three offending nodes."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    lstm_w = rng.standard_normal((1, 16, 4)).astype(np.float32)
    lstm_r = rng.standard_normal((1, 16, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("FooBar", ["c"], ["f1"], name="foo_1"),
        helper.make_node("FooBar", ["f1"], ["f2"], name="foo_2"),
        helper.make_node("Reshape", ["f2", "seq_shape"], ["seq"], name="to_sequence"),
        helper.make_node("LSTM", ["seq", "lstm_w", "lstm_r"], ["y"], name="lstm", hidden_size=4),
    ]
    graph = helper.make_graph(
        nodes,
        "unsupported",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.array([64, 1, 4], np.int64), "seq_shape"),
            numpy_helper.from_array(lstm_w, "lstm_w"),
            numpy_helper.from_array(lstm_r, "lstm_r"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


@pytest.fixture
def no_gpu(monkeypatch):
    """Fail the test if the engine asks for a GPU device."""

    def forbidden(adapter=None):
        raise AssertionError("infer.load requested a GPU device before rejecting the model")

    monkeypatch.setattr(infer.model, "get_device", forbidden)


def test_unsupported_ops_listed_before_gpu_work(no_gpu):
    with pytest.raises(infer.UnsupportedModelError) as info:
        infer.load(_model_with_unsupported_ops())
    err = info.value
    assert err.op_types == ["FooBar", "LSTM"]
    assert err.opset == 17
    assert sorted(name for _, name, _ in err.problems) == ["foo_1", "foo_2", "lstm"]
    text = str(err)
    for fragment in ("opset 17", "2 unsupported op type", "FooBar", "foo_1", "foo_2", "LSTM"):
        assert fragment in text, f"{fragment!r} missing from: {text}"
    assert "lstm" in text.split("LSTM")[1]
    assert "conv" not in text.replace("Conv", "")  # the supported node is not blamed


def test_unsupported_error_is_a_model_error(no_gpu, tmp_path):
    path = tmp_path / "unsupported.onnx"
    onnx.save(_model_with_unsupported_ops(), str(path))
    with pytest.raises(infer.ModelError, match="FooBar"):
        infer.load(path)


@pytest.mark.parametrize(
    "content",
    [b"this is not an onnx model at all\n" * 8, bytes(range(256)) * 4],
    ids=["text", "binary"],
)
def test_garbage_file_is_a_model_error(no_gpu, tmp_path, content):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(content)
    with pytest.raises(infer.ModelError) as info:
        infer.load(path)
    assert not isinstance(info.value, infer.UnsupportedModelError)
    text = str(info.value)
    assert "garbage.onnx" in text
    assert "not a readable ONNX model" in text or "empty graph" in text


def test_truncated_file_is_a_model_error(no_gpu, tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    data = single_node_model("Conv", {"x": (1, 3, 8, 8)}, {"w": w}).SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(infer.ModelError, match=r"truncated\.onnx: not a readable ONNX model"):
        infer.load(path)


def test_missing_file_is_a_model_error(no_gpu, tmp_path):
    with pytest.raises(infer.ModelError, match="not found"):
        infer.load(tmp_path / "nope.onnx")


@pytest.mark.gpu
def test_wrong_input_rank_names_the_input():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    model = single_node_model("Conv", {"image": (1, 3, 8, 8)}, {"w": w}, pads=[1, 1, 1, 1])
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "width"
    m = infer.load(model)
    with pytest.raises(infer.ModelError, match=r"input 'image' must have rank 4") as info:
        m.run(np.zeros((3, 8, 8), np.float32))
    assert "[3, 8, 8]" in str(info.value)
    with pytest.raises(infer.ModelError, match=r"input 'image' dimension 1 must be 3"):
        m.run(np.zeros((1, 4, 8, 8), np.float32))


def test_a_node_with_more_inputs_or_outputs_than_its_op_takes_is_named(no_gpu):
    """A LogSoftmax given two inputs and three outputs (the random-graph fuzz found one) is
    refused by name before any device is asked for; its kernel would otherwise bind four
    buffers to a shader that declares two (a wgpu validation error, not a model error)."""
    nodes = [helper.make_node("LogSoftmax", ["c", "x"], ["a", "b", "y"], name="lsm")]
    graph = helper.make_graph(
        nodes,
        "arity",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 9, 7])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones(1, np.float32), "c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(infer.UnsupportedModelError) as e:
        infer.load(model)
    text = str(e.value)
    assert "lsm" in text and "inputs, has 2" in text

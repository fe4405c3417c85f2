"""External data is counted as onnx reads it: a missing `length` reads to the end of the
file, and every tensor onnx loads (subgraphs, TENSORS attributes, functions) counts against
max_initializer_bytes, refused by name before a byte is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

import infer
from infer import Caps
from infer.external import onnx_tensors
from infer.graph import from_onnx, load_proto

from .onnx_helpers import single_node_model

BIG = np.arange(1024, dtype=np.float32)  # 4 KiB, over the 1 KiB cap the tests set


def _save(model: onnx.ModelProto, folder: Path) -> Path:
    path = folder / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0, convert_attribute=True)  # fmt: skip
    return path


def _conv(folder: Path) -> tuple[Path, np.ndarray]:
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    return _save(single_node_model("Conv", {"x": (1, 3, 8, 8)}, {"w": w}, pads=[1] * 4), folder), w


def _set(path: Path, name: str, **entries: str | None) -> None:
    """Rewrite tensor `name`'s external_data entries (None removes one)."""
    model = onnx.load(str(path), load_external_data=False)
    (t,) = [t for t in onnx_tensors(model) if t.name == name]
    info = {e.key: e.value for e in t.external_data} | entries
    del t.external_data[:]
    for key, value in info.items():
        if value is not None:
            entry = t.external_data.add()
            entry.key, entry.value = key, value
    onnx.save(model, path)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tensors onnx reads external data for (its per-tensor loader, which
    load_external_data_for_model calls too)."""
    seen: list[str] = []
    real = external_data_helper.load_external_data_for_tensor

    def spy(tensor: TensorProto, base_dir: str) -> None:
        seen.append(tensor.name)
        real(tensor, base_dir)

    monkeypatch.setattr(external_data_helper, "load_external_data_for_tensor", spy)
    return seen


def test_a_missing_length_counts_the_rest_of_the_file_and_is_refused_before_reading(
    tmp_path, reads
):
    path, _ = _conv(tmp_path)
    _set(path, "w", length=None)  # onnx now reads to the end of weights.bin ...
    with open(tmp_path / "weights.bin", "ab") as f:
        f.write(b"\0" * (256 << 10))  # ... which is far longer than the 432 bytes w declares
    with pytest.raises(infer.ModelError) as e:
        load_proto(path, Caps(max_initializer_bytes=64 << 10))
    assert "tensor 'w' 262,576 bytes" in str(e.value)
    assert "over the cap max_initializer_bytes = 65,536 bytes" in str(e.value)
    assert reads == []  # refused before anything was read
    proto = load_proto(path)  # under the cap: read exactly as counted, to the end
    assert len(proto.graph.initializer[0].raw_data) == 262_576


def _if_model() -> onnx.ModelProto:
    """The weight is an initializer of the If's then-branch."""
    then = helper.make_graph(
        [helper.make_node("Identity", ["then_w"], ["t"])], "then",
        [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1024])],
        [numpy_helper.from_array(BIG, "then_w")],
    )  # fmt: skip
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"])], "else",
        [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1024])],
    )  # fmt: skip
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)
    return _model([node], (("c", TensorProto.BOOL, []),))


def _tensors_model() -> onnx.ModelProto:
    """The weight is one of a custom node's TENSORS attribute."""
    small = numpy_helper.from_array(np.zeros(2, np.float32), "small")
    node = helper.make_node(
        "Tables", ["x"], ["y"], domain="test.custom",
        tables=[small, numpy_helper.from_array(BIG, "table_w")],
    )  # fmt: skip
    return _model([node], opsets={"test.custom": 1})


def _function_model() -> onnx.ModelProto:
    """The weight is a Constant inside a model-local function."""
    body = [
        helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(BIG, "fn_w")),
        helper.make_node("Add", ["a", "k"], ["b"]),
    ]
    fn = helper.make_function("test.fn", "AddK", ["a"], ["b"], body,
                              [helper.make_opsetid("", 17)])  # fmt: skip
    model = _model([helper.make_node("AddK", ["x"], ["y"], domain="test.fn")],
                   opsets={"test.fn": 1})  # fmt: skip
    model.functions.append(fn)
    return model


def _model(
    nodes: list[onnx.NodeProto],
    extra_inputs: tuple[tuple[str, int, list[int]], ...] = (),
    opsets: dict[str, int] | None = None,
) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024])]
    inputs += [helper.make_tensor_value_info(*i) for i in extra_inputs]
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024])]
    )
    imports = [helper.make_opsetid("", 17)]
    imports += [helper.make_opsetid(d, v) for d, v in (opsets or {}).items()]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 9
    return model


@pytest.mark.parametrize(
    ("make", "name"),
    [(_if_model, "then_w"), (_tensors_model, "table_w"), (_function_model, "fn_w")],
    ids=["if-subgraph", "tensors-attribute", "function"],
)
def test_every_tensor_onnx_loads_is_counted(tmp_path, reads, make, name):
    path = _save(make(), tmp_path)
    with pytest.raises(infer.ModelError, match=f"tensor '{name}' 4,096 bytes.*max_initializer"):
        load_proto(path, Caps(max_initializer_bytes=1024))
    assert reads == []
    proto = load_proto(path)  # under the default cap it is read, and only once
    assert name in reads and len(reads) == len(set(reads))
    (t,) = [t for t in onnx_tensors(proto) if t.name == name]
    assert not external_data_helper.uses_external_data(t)
    np.testing.assert_array_equal(numpy_helper.to_array(t), BIG)


def test_the_tensors_counted_are_the_tensors_onnx_loads():
    """Drift check against the installed onnx's own walk (a private function, read only here):
    nested subgraphs, GRAPHS attributes, TENSOR and TENSORS attributes, functions."""
    (inner,) = [a.g for a in _if_model().graph.node[0].attribute if a.name == "then_branch"]
    inner.node.append(
        helper.make_node("Constant", [], ["kk"], value=numpy_helper.from_array(BIG, "deep_t"))
    )
    outer = helper.make_node("Multi", ["x"], ["y"], domain="test.custom", bodies=[inner, inner])
    outer.attribute.append(helper.make_attribute("g", _tensors_model().graph))
    model = _function_model()
    model.graph.node.append(outer)
    model.graph.initializer.append(numpy_helper.from_array(BIG, "top_w"))
    ours = sorted(t.name for t in onnx_tensors(model))
    theirs = sorted(t.name for t in external_data_helper._get_all_tensors(model))
    assert ours == theirs
    assert {"then_w", "deep_t", "table_w", "small", "fn_w", "top_w"} <= set(ours)


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ({"length": "100000"}, "length 100,000 from offset 0 runs past the end of weights.bin"),
        ({"offset": "100000"}, "offset 100,000 is past the end of weights.bin"),
        ({"offset": "-4"}, "negative offset"),
        ({"location": "link.bin"}, "is a symbolic link"),
        ({"location": "sub/../../x.bin"}, "outside the model's folder"),
    ],
)
def test_a_read_beyond_the_file_or_the_folder_is_refused_naming_the_tensor(
    tmp_path, reads, entries, why
):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "x.bin").write_bytes(b"\0" * 432)
    (folder / "link.bin").symlink_to(tmp_path / "x.bin")
    path, _ = _conv(folder)
    _set(path, "w", **entries)
    with pytest.raises(infer.ModelError, match=f"for tensor 'w': .*{why}"):
        load_proto(path)
    assert reads == []


def test_a_proto_with_unloaded_external_data_is_refused_not_read_from_the_cwd(
    tmp_path, monkeypatch
):
    path, _ = _conv(tmp_path)
    monkeypatch.chdir(tmp_path)  # where onnx's to_array would look for weights.bin
    with pytest.raises(infer.ModelError, match="'w' holds external data that was never loaded"):
        from_onnx(onnx.load(str(path), load_external_data=False))


def test_ordinary_external_data_loads_unchanged(tmp_path):
    path, w = _conv(tmp_path)
    _set(path, "w", length=None)  # the file holds only w: to the end is exactly w
    np.testing.assert_array_equal(from_onnx(load_proto(path)).constants["w"], w)


@pytest.mark.gpu
def test_an_external_data_model_matches_onnxruntime(tmp_path):
    path, _ = _conv(tmp_path)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    (ref,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = infer.load(path).run(x)
    assert float(np.abs(got - ref).max()) <= 1e-4 * float(np.abs(ref).max())

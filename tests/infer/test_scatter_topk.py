"""ScatterND (every reduction onnx defines) and TopK on GPU tensors against onnxruntime at odd
sizes, and the in-place slice assignment torch exports as a ScatterND turned into Slice +
Concat (RealPLKSR's partial conv; SeemoRe's TopK routing)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import infer

from .onnx_helpers import assert_matches, random_inputs, reference, single_node_model

pytestmark = pytest.mark.gpu


def program_ops(model, shapes) -> list[str]:
    return [n.op_type for n in infer.load(model).program(shapes).graph.nodes]


# ---- ScatterND ---------------------------------------------------------------------------

DATA = (2, 5, 7, 3)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize(
    "indices",
    [
        np.array([[1, 3], [0, 0], [1, -1]], np.int64),  # depth 2: rows of (7, 3) slices
        np.array([[[1], [0]], [[1], [1]]], np.int64),  # depth 1, 2-D, duplicates
        np.array([[0, 4, 6, 2], [1, 0, 0, 0], [0, 4, 6, 2]], np.int64),  # elements, duplicate
    ],
)
def test_scatter_nd_matches_onnxruntime(reduction, indices):
    if reduction == "none" and len({tuple(r) for r in indices.reshape(-1, indices.shape[-1])}) < (
        indices.size // indices.shape[-1]
    ):
        indices = indices[..., :1, :] if indices.ndim == 3 else indices[:2]  # undefined order
    upd_shape = (*indices.shape[:-1], *DATA[indices.shape[-1] :])
    model = single_node_model(
        "ScatterND",
        {"x": DATA, "u": upd_shape},
        {"i": indices},
        opset=18,
        input_order=["x", "i", "u"],
        reduction=reduction,
    )
    assert "ScatterND" in program_ops(model, {"x": DATA, "u": upd_shape})
    assert_matches(model, random_inputs({"x": DATA, "u": upd_shape}))


def test_scatter_nd_refuses_an_unknown_reduction_by_name():
    model = single_node_model(
        "ScatterND",
        {"x": DATA, "u": (1, 7, 3)},
        {"i": np.array([[1, 2]], np.int64)},
        opset=18,
        input_order=["x", "i", "u"],
        reduction="mean",
    )
    with pytest.raises(infer.UnsupportedModelError, match=r"ScatterND.*'mean'"):
        infer.load(model).run(random_inputs({"x": DATA, "u": (1, 7, 3)}))


def _block_indices(shape: tuple[int, ...], axis: int, lo: int, hi: int, q: int) -> np.ndarray:
    ranges = [np.arange(d) for d in shape[:q]]
    ranges[axis] = np.arange(lo, hi)
    return np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).astype(np.int64)


@pytest.mark.parametrize(
    "axis,lo,hi,q",
    [(1, 0, 3, 2), (1, 2, 5, 2), (1, 1, 4, 2), (2, 3, 7, 3), (0, 1, 2, 1)],
)
def test_slice_assignment_becomes_slice_and_concat(axis, lo, hi, q):
    """`x[:, lo:hi] = u` as exported (a full index grid of the block): no scatter kernel."""
    indices = _block_indices(DATA, axis, lo, hi, q)
    upd = (*indices.shape[:-1], *DATA[q:])
    model = single_node_model(
        "ScatterND", {"x": DATA, "u": upd}, {"i": indices}, input_order=["x", "i", "u"]
    )
    ops = program_ops(model, {"x": DATA, "u": upd})
    assert "ScatterND" not in ops and "Concat" in ops, ops
    assert_matches(model, random_inputs({"x": DATA, "u": upd}))


def test_shuffled_block_stays_a_scatter():
    indices = _block_indices(DATA, 1, 1, 4, 2)[:, ::-1].copy()  # channels 3, 2, 1
    upd = (*indices.shape[:-1], *DATA[2:])
    model = single_node_model(
        "ScatterND", {"x": DATA, "u": upd}, {"i": indices}, input_order=["x", "i", "u"]
    )
    assert "ScatterND" in program_ops(model, {"x": DATA, "u": upd})
    assert_matches(model, random_inputs({"x": DATA, "u": upd}))


def test_torch_in_place_slice_assignment(tmp_path):
    """RealPLKSR's PLKConv2d at inference: `x[:, :k] = conv(x[:, :k])`, exported by torch
    with dynamic height and width; run at an odd size."""
    torch = pytest.importorskip("torch")

    class Partial(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 5, 1, 2)
            self.mix = torch.nn.Conv2d(7, 7, 1)

        def forward(self, x):
            x = self.mix(x)
            x[:, :3] = self.conv(x[:, :3])
            return x * 2.0

    path = tmp_path / "partial.onnx"
    torch.manual_seed(0)
    torch.onnx.export(
        Partial().eval(),
        torch.rand(1, 7, 16, 16),
        str(path),
        opset_version=17,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "h", 3: "w"}},
        dynamo=False,
    )
    import onnx

    proto = onnx.load(str(path))
    assert "ScatterND" in {n.op_type for n in proto.graph.node}
    assert "ScatterND" not in program_ops(proto, {"input": (1, 7, 13, 11)})
    x = random_inputs({"input": (1, 7, 13, 11)})["input"]
    (ref,) = reference(proto, {"input": x})
    got = infer.load(proto).run(x)
    assert float(np.abs(got - ref).max()) / float(np.abs(ref).max()) <= 1e-4


# ---- TopK --------------------------------------------------------------------------------


@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize(
    "shape,axis,k", [((3, 5, 7), -1, 3), ((2, 9, 5, 3), 1, 4), ((1, 4), -1, 4), ((5, 6, 3), 0, 2)]
)
def test_topk_matches_onnxruntime(shape, axis, k, largest):
    model = single_node_model(
        "TopK",
        {"x": shape},
        {"k": np.array([k], np.int64)},
        opset=11,
        n_outputs=2,
        axis=axis,
        largest=largest,
        sorted=1,
    )
    model.graph.output[1].type.tensor_type.elem_type = TensorProto.INT64
    feeds = random_inputs({"x": shape})
    feeds["x"] = np.round(feeds["x"] * 2) / 2  # ties: the lower index first
    values, indices = reference(model, feeds)
    got = infer.load(model).run(feeds["x"])
    got_values, got_indices = got["y0"], got["y1"]
    np.testing.assert_array_equal(got_values, values)
    assert got_indices.dtype == np.int64
    np.testing.assert_array_equal(got_indices, indices)


def test_topk_values_only_feed_the_network():
    """As in SeemoRe: the weights go on, the indices are not read."""
    nodes = [
        helper.make_node("Softmax", ["x"], ["p"], axis=-1),
        helper.make_node("TopK", ["p", "k"], ["v", "unused"], axis=-1),
        helper.make_node("Mul", ["v", "v"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "route",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("k", TensorProto.INT64, [1], [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    assert_matches(model, random_inputs({"x": (3, 7)}))

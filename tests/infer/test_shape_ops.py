import numpy as np
import onnx
import pytest
import wgpu
from onnx import helper, numpy_helper

import infer
from infer.errors import UnsupportedModelError
from infer.layout import physical_shape, physical_size

from .onnx_helpers import assert_matches, random_inputs, reference, single_node_model

pytestmark = pytest.mark.gpu

INT_MAX = 2**63 - 1


def i64(*v):
    return np.array(v, np.int64)


def check(op, inputs, consts=None, opset=17, order=None, **attrs):
    model = single_node_model(op, inputs, consts, opset=opset, input_order=order, **attrs)
    return assert_matches(model, random_inputs(inputs))


# ---- Transpose -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,perm",
    [
        ((1, 5, 13, 17), None),
        ((1, 5, 13, 17), [0, 2, 3, 1]),
        ((1, 5, 13, 17), [0, 3, 1, 2]),
        ((2, 5, 3, 7), [1, 0, 2, 3]),
        ((5, 7), None),
        ((3, 5, 7), [1, 2, 0]),
        ((1, 3, 4, 5, 6), [0, 4, 1, 3, 2]),
        ((2, 3, 2, 2, 3, 5), [0, 1, 4, 2, 5, 3]),
    ],
)
def test_transpose(shape, perm):
    attrs = {} if perm is None else {"perm": perm}
    check("Transpose", {"x": shape}, **attrs)


# ---- Reshape / Flatten ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,target",
    [
        ((1, 5, 13, 17), [0, -1, 17]),
        ((1, 5, 13, 17), [1, 5, 221]),
        ((1, 5, 13, 17), [-1]),
        ((1, 5, 13, 17), [5, 13, 17]),
        ((1, 5, 13, 17), [1, 13, 5, 17]),
        ((1, 5, 13, 17), [0, 0, 17, 13]),
        ((6, 10), [3, 4, 5]),
        ((3, 5, 7), [7, -1]),
        ((1, 3, 2, 5, 7), [0, 6, -1]),
        ((1, 12, 3, 5), [1, 3, 2, 2, 3, 5]),
    ],
)
def test_reshape(shape, target):
    check("Reshape", {"x": shape}, {"shape": i64(*target)})


def test_reshape_allowzero():
    check("Reshape", {"x": (1, 5, 13, 17)}, {"shape": i64(5, 13, 17, 1)}, opset=14, allowzero=1)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, 4, -1])
def test_flatten(axis):
    check("Flatten", {"x": (1, 5, 13, 17)}, axis=axis)


@pytest.mark.parametrize("shape,axis", [((3, 5, 7), 2), ((7, 9), 1), ((1, 3, 2, 5, 7), 3)])
def test_flatten_other_ranks(shape, axis):
    check("Flatten", {"x": shape}, axis=axis)


# ---- Concat --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shapes,axis",
    [
        ([(1, 5, 13, 17), (1, 3, 13, 17), (1, 9, 13, 17)], 1),
        ([(1, 5, 13, 17), (1, 5, 4, 17)], 2),
        ([(1, 5, 13, 17), (1, 5, 13, 3), (1, 5, 13, 1)], -1),
        ([(2, 5, 3, 7), (1, 5, 3, 7)], 0),
        ([(5, 7), (5, 3)], 1),
        ([(5, 7), (2, 7)], 0),
        ([(3, 5, 7), (3, 2, 7)], 1),
        ([(1, 3, 2, 5, 7), (1, 3, 2, 1, 7)], 3),
        ([(7,), (5,)], 0),
    ],
)
def test_concat(shapes, axis):
    check("Concat", {f"x{k}": s for k, s in enumerate(shapes)}, axis=axis)


@pytest.mark.parametrize("axis", [1, 2])
def test_concat_many_inputs_split_dispatches(axis):
    shapes = {
        f"x{k}": (1, 5, 3 + k % 3, 7) if axis == 2 else (1, k % 4 + 1, 3, 7) for k in range(9)
    }
    model = single_node_model("Concat", shapes, axis=axis)
    program = infer.load(model).program(shapes)
    assert len(program.dispatches) == 2
    assert_matches(model, random_inputs(shapes))


def test_concat_with_float_constant():
    rng = np.random.default_rng(5)
    c = rng.standard_normal((1, 3, 13, 17)).astype(np.float32)
    check("Concat", {"x": (1, 5, 13, 17)}, {"c": c}, order=["c", "x", "c"], axis=1)


# ---- Slice ---------------------------------------------------------------------------------

SLICES = {
    "channels": ([1], [4], [1], None),
    "spatial_steps": ([1, 2], [12, 16], [2, 3], [2, 3]),
    "negative_steps": ([4, -2], [-INT_MAX, 1], [1, 3], [-2, -3]),
    "reverse_all_h": ([-1], [-INT_MAX], [2], [-1]),
    "int_max_end": ([2, 3], [INT_MAX, INT_MAX], [-2, -1], None),
    "clamped": ([-100, 1], [100, 1000], [2, 1], [1, 2]),
    "no_axes": ([0, 1, 2, 3], [1, 5, 11, 15], None, None),
}


@pytest.mark.parametrize("name", list(SLICES))
def test_slice(name):
    starts, ends, axes, steps = SLICES[name]
    consts = {"starts": i64(*starts), "ends": i64(*ends)}
    order = ["x", "starts", "ends"]
    if axes is not None or steps is not None:
        consts["axes"] = i64(*(axes if axes is not None else range(len(starts))))
        order.append("axes")
    if steps is not None:
        consts["steps"] = i64(*steps)
        order.append("steps")
    check("Slice", {"x": (1, 5, 13, 17)}, consts, opset=13, order=order)


@pytest.mark.parametrize(
    "shape,starts,ends,axes,steps",
    [
        ((9, 11), [1, -1], [8, 0], [0, 1], [3, -2]),
        ((3, 7, 11), [0], [INT_MAX], [1], [2]),
        ((1, 3, 6, 5, 7), [1, 4, 1], [3, 0, INT_MAX], [1, 2, 4], [1, -1, 2]),
        ((13,), [11], [-INT_MAX], [0], [-3]),
    ],
)
def test_slice_other_ranks(shape, starts, ends, axes, steps):
    consts = {"s": i64(*starts), "e": i64(*ends), "a": i64(*axes), "p": i64(*steps)}
    check("Slice", {"x": shape}, consts, opset=13)


def test_slice_opset9_attributes():
    check("Slice", {"x": (1, 5, 13, 17)}, opset=9, starts=[1, 2], ends=[4, -1], axes=[1, 3])
    check("Slice", {"x": (1, 5, 13, 17)}, opset=9, starts=[0, 0, 3], ends=[1, 2, 100])


# ---- Pad -----------------------------------------------------------------------------------

PADS = {
    "constant": ("constant", [0, 1, 2, 3, 0, 2, 1, 0], 0.0),
    "constant_value": ("constant", [0, 0, 1, 1, 0, 3, 1, 2], 1.5),
    "negative": ("constant", [0, -1, 2, -3, 0, 2, -1, 3], -2.0),
    "reflect": ("reflect", [0, 0, 2, 3, 0, 0, 4, 1], None),
    "reflect_channels": ("reflect", [0, 2, 1, 1, 0, 3, 1, 1], None),
    "edge": ("edge", [0, 1, 3, 2, 0, 2, 2, 5], None),
    "edge_negative": ("edge", [0, 0, -2, 3, 0, 0, 2, -4], None),
    "reflect_negative": ("reflect", [0, -1, 2, -3, 0, 2, -1, 3], None),
}


@pytest.mark.parametrize("name", list(PADS))
def test_pad(name):
    mode, pads, value = PADS[name]
    consts = {"pads": i64(*pads)}
    if value is not None:
        consts["value"] = np.array(value, np.float32)
    check("Pad", {"x": (1, 5, 13, 17)}, consts, opset=13, mode=mode)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("shape", [(9, 11), (3, 7, 11), (2, 3, 4, 5, 7)])
def test_pad_other_ranks(shape, mode):
    rank = len(shape)
    pads = [k % 3 for k in range(rank)] + [(k + 1) % 3 if k else 0 for k in range(rank)]
    check("Pad", {"x": shape}, {"pads": i64(*pads)}, opset=13, mode=mode)


def test_pad_axes_input():
    consts = {"pads": i64(2, 1, 3, 0), "value": np.array(0.5, np.float32), "axes": i64(-1, 1)}
    check("Pad", {"x": (1, 5, 13, 17)}, consts, opset=18, mode="constant")


def test_pad_wrap():
    check(
        "Pad", {"x": (1, 5, 13, 17)}, {"pads": i64(0, 0, 2, 3, 0, 0, 4, 1)}, opset=19, mode="wrap"
    )


def test_pad_opset2_attributes():
    pads = [0, 1, 2, 1, 0, 0, 1, 3]
    check("Pad", {"x": (1, 5, 13, 17)}, opset=10, pads=pads, value=0.25)
    check("Pad", {"x": (1, 5, 13, 17)}, opset=10, pads=pads, mode="reflect")


# ---- DepthToSpace / SpaceToDepth -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("shape,block", [((1, 12, 5, 7), 2), ((1, 18, 3, 5), 3), ((2, 4, 3, 3), 2)])
def test_depth_to_space(shape, block, mode):
    check("DepthToSpace", {"x": shape}, blocksize=block, mode=mode)


@pytest.mark.parametrize("shape,block", [((1, 3, 6, 8), 2), ((1, 5, 6, 9), 3), ((2, 1, 4, 2), 2)])
def test_space_to_depth(shape, block):
    check("SpaceToDepth", {"x": shape}, blocksize=block)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_pixel_shuffle_chain_becomes_one_kernel(mode):
    n, c, h, w, r = 1, 3, 5, 7, 2
    if mode == "DCR":
        mid, perm = [n, r, r, c, h, w], [0, 3, 4, 1, 5, 2]
    else:
        mid, perm = [n, c, r, r, h, w], [0, 1, 4, 2, 5, 3]
    nodes = [
        helper.make_node("Reshape", ["x", "mid"], ["a"]),
        helper.make_node("Transpose", ["a"], ["b"], perm=perm),
        helper.make_node("Reshape", ["b", "dst"], ["y"]),
    ]
    consts = {"mid": i64(*mid), "dst": i64(n, c, h * r, w * r)}
    model = _model(nodes, [("x", (n, c * r * r, h, w))], consts)
    program = infer.load(model).program({"x": (n, c * r * r, h, w)})
    assert [node.op_type for node in program.graph.nodes] == ["DepthToSpace"]
    assert_matches(model, random_inputs({"x": (n, c * r * r, h, w)}))


@pytest.mark.parametrize("form", ["basicsr", "torch"])
def test_pixel_unshuffle_chain_becomes_one_kernel(form):
    """basicsr's view / permute / reshape, and F.pixel_unshuffle as the exporter writes it
    (Unsqueeze, Reshapes with 0 and -1, Transpose, Reshape, Squeeze): one SpaceToDepth."""
    n, c, h, w, r = 1, 3, 10, 6, 2
    if form == "basicsr":
        nodes = [
            helper.make_node("Reshape", ["x", "mid"], ["a"]),
            helper.make_node("Transpose", ["a"], ["b"], perm=[0, 1, 3, 5, 2, 4]),
            helper.make_node("Reshape", ["b", "dst"], ["y"]),
        ]
        consts = {"mid": i64(n, c, h // r, r, w // r, r), "dst": i64(n, c * r * r, h // r, w // r)}
    else:
        nodes = [
            helper.make_node("Unsqueeze", ["x", "ax3"], ["u"]),
            helper.make_node("Reshape", ["u", "r1"], ["a1"]),
            helper.make_node("Reshape", ["a1", "r2"], ["a2"]),
            helper.make_node("Transpose", ["a2"], ["b"], perm=[0, 1, 3, 5, 2, 4]),
            helper.make_node("Reshape", ["b", "r3"], ["b2"]),
            helper.make_node("Squeeze", ["b2", "ax23"], ["y"]),
        ]
        consts = {
            "ax3": i64(3),
            "r1": i64(0, 0, -1, r, 0),
            "r2": i64(0, 0, 0, 0, -1, r),
            "r3": i64(0, -1, 1, 1, 0, 0),
            "ax23": i64(2, 3),
        }
    model = _model(nodes, [("x", (n, c, h, w))], consts)
    program = infer.load(model).program({"x": (n, c, h, w)})
    assert [node.op_type for node in program.graph.nodes] == ["SpaceToDepth"]
    assert_matches(model, random_inputs({"x": (n, c, h, w)}))


# ---- padding lanes -------------------------------------------------------------------------


def raw_output(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple:
    """The output's physical buffer after a run that starts from a buffer full of garbage."""
    exe = infer.load(model).executable(feeds)
    (out,) = exe.outputs
    buf = exe.tensor_buffer(out)
    exe.device.queue.write_buffer(buf, 0, np.full(buf.size // 4, 7.0, np.float32))
    exe.upload(feeds)
    exe.submit(feeds)
    exe.readback.map_sync(wgpu.MapMode.READ)
    try:
        raw = np.frombuffer(exe.readback.read_mapped(copy=True), np.float32)
    finally:
        exe.readback.unmap()
    off, _ = exe.out_offsets[out]
    shape = exe.program.values[out].shape
    return raw[off // 4 : off // 4 + physical_size(shape)].reshape(physical_shape(shape)), shape


@pytest.mark.parametrize(
    "op,inputs,consts,attrs",
    [
        ("Concat", {f"x{k}": (1, k % 3 + 1, 3, 5) for k in range(8)}, {}, {"axis": 1}),
        ("Concat", {"a": (1, 5, 3, 5), "b": (1, 5, 2, 5)}, {}, {"axis": 2}),
        ("Slice", {"x": (1, 8, 3, 5)}, {"s": i64(1), "e": i64(6), "a": i64(1)}, {}),
        ("Reshape", {"x": (1, 8, 3, 5)}, {"s": i64(1, 6, 5, 4)}, {}),
        ("Pad", {"x": (1, 4, 3, 5)}, {"p": i64(0, 1, 0, 0, 0, 0, 0, 0)}, {"mode": "edge"}),
        ("Transpose", {"x": (1, 8, 3, 5)}, {}, {"perm": [0, 3, 1, 2]}),
        ("DepthToSpace", {"x": (1, 12, 2, 3)}, {}, {"blocksize": 2}),
    ],
)
def test_pad_lanes_written_zero(op, inputs, consts, attrs):
    model = single_node_model(op, inputs, consts, opset=13, **attrs)
    feeds = random_inputs(inputs)
    phys, shape = raw_output(model, feeds)
    assert shape[1] % 4, "test needs an output with padding lanes"
    assert np.all(phys[..., shape[1] :] == 0)
    assert_matches(model, feeds)


# ---- constant folding of shape chains ------------------------------------------------------


def _model(nodes, inputs, initializers, opset=13):
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info(k, onnx.TensorProto.FLOAT, list(s)) for k, s in inputs],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 9)
    return model


def _assert_folds_to_reshape(model, shape):
    program = infer.load(model).program({"x": shape})
    ops = [n.op_type for n in program.graph.nodes]
    assert ops == ["Reshape"], ops
    feeds = random_inputs({"x": shape})
    got = infer.load(model).run(feeds["x"])
    (ref,) = reference(model, feeds)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=0)


def test_shape_gather_unsqueeze_concat_reshape_folds():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
        helper.make_node("Gather", ["s", "i2"], ["h"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Unsqueeze", ["h", "ax0"], ["h1"]),
        helper.make_node("Concat", ["n1", "h1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    consts = {
        "i0": np.array(0, np.int64),
        "i2": np.array(2, np.int64),
        "ax0": i64(0),
        "minus1": i64(-1),
    }
    model = _model(nodes, [("x", (1, 5, 13, 17))], consts)
    _assert_folds_to_reshape(model, (1, 5, 13, 17))


def test_int64_transpose_flatten_slice_fold():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "st", "en", "ax", "sp"], ["rev"]),  # [17, 13, 5, 1]
        helper.make_node("Reshape", ["rev", "two_by_two"], ["m"]),  # [[17, 13], [5, 1]]
        helper.make_node("Transpose", ["m"], ["mt"], perm=[1, 0]),  # [[17, 5], [13, 1]]
        helper.make_node("Flatten", ["mt"], ["f"], axis=0),  # [[17, 5, 13, 1]]
        helper.make_node("Reshape", ["f", "minus1"], ["target"]),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    consts = {
        "st": i64(-1),
        "en": i64(-INT_MAX),
        "ax": i64(0),
        "sp": i64(-1),
        "two_by_two": i64(2, 2),
        "minus1": i64(-1),
    }
    model = _model(nodes, [("x", (1, 5, 13, 17))], consts)
    _assert_folds_to_reshape(model, (1, 5, 13, 17))


# ---- unsupported ---------------------------------------------------------------------------


def test_integer_tensor_is_not_supported_on_gpu():
    node = helper.make_node("Transpose", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "t",
        [helper.make_tensor_value_info("x", onnx.TensorProto.INT64, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT64, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    with pytest.raises(UnsupportedModelError, match="int64"):
        infer.load(model).program({"x": (2, 3)})


def test_reflect_wider_than_axis_is_not_supported():
    model = single_node_model(
        "Pad", {"x": (1, 2, 3, 3)}, {"pads": i64(0, 0, 3, 0, 0, 0, 0, 0)}, mode="reflect"
    )
    with pytest.raises(UnsupportedModelError, match="reflect"):
        infer.load(model).program({"x": (1, 2, 3, 3)})

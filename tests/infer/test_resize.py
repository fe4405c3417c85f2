import numpy as np
import pytest

from infer.graph import Node
from infer.ops import lookup

from .onnx_helpers import assert_matches, random_inputs, reference, single_node_model

pytestmark = pytest.mark.gpu

F = np.float32
X = (1, 5, 13, 17)

# name -> (input shape, attrs, scales, sizes, roi, opset)
CASES = {
    "nearest_asym_floor_x2": (
        X,
        dict(coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        [1, 1, 2, 2],
        None,
        None,
        13,
    ),
    "nearest_half_pixel_down": (X, {}, None, [1, 5, 7, 9], None, 13),
    "nearest_align_prefer_ceil": (
        X,
        dict(coordinate_transformation_mode="align_corners", nearest_mode="round_prefer_ceil"),
        None,
        [1, 5, 25, 33],
        None,
        13,
    ),
    "nearest_every_axis": (
        (2, 5, 7, 9),
        dict(nearest_mode="floor"),
        [1.5, 0.8, 1, 2.5],
        None,
        None,
        13,
    ),
    "linear_half_pixel_x2": (X, dict(mode="linear"), [1, 1, 2, 2], None, None, 13),
    "linear_pytorch_one_row": (
        X,
        dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
        None,
        [1, 5, 1, 9],
        None,
        13,
    ),
    "linear_align_corners": (
        X,
        dict(mode="linear", coordinate_transformation_mode="align_corners"),
        None,
        [1, 5, 20, 11],
        None,
        13,
    ),
    "linear_asymmetric": (
        X,
        dict(mode="linear", coordinate_transformation_mode="asymmetric"),
        [1, 1, 0.6, 1.7],
        None,
        None,
        13,
    ),
    "linear_tf_crop": (
        X,
        dict(
            mode="linear",
            coordinate_transformation_mode="tf_crop_and_resize",
            extrapolation_value=2.5,
        ),
        None,
        [1, 5, 9, 11],
        [0, 0, -0.2, 0.1, 1, 1, 0.8, 1.3],
        13,
    ),
    "linear_3d": ((1, 3, 5, 7, 9), dict(mode="linear"), [1, 1, 2, 1.5, 0.7], None, None, 13),
    "cubic_half_pixel_x2": (X, dict(mode="cubic"), [1, 1, 2, 2], None, None, 13),
    "cubic_align_exclude": (
        X,
        dict(
            mode="cubic",
            coordinate_transformation_mode="align_corners",
            exclude_outside=1,
            cubic_coeff_a=-0.5,
        ),
        None,
        [1, 5, 21, 12],
        None,
        13,
    ),
    "cubic_asymmetric_down": (
        X,
        dict(mode="cubic", coordinate_transformation_mode="asymmetric"),
        [1, 1, 0.7, 0.5],
        None,
        None,
        13,
    ),
    "opset18_axes_not_larger": (
        X,
        dict(mode="linear", axes=[2, 3], keep_aspect_ratio_policy="not_larger"),
        None,
        [20, 40],
        None,
        18,
    ),
    "opset18_axes_nearest_not_smaller": (
        X,
        dict(axes=[3, 2], keep_aspect_ratio_policy="not_smaller"),
        None,
        [30, 20],
        None,
        18,
    ),
    "opset19_half_pixel_symmetric": (
        X,
        dict(mode="linear", coordinate_transformation_mode="half_pixel_symmetric"),
        [1, 1, 1.7, 0.6],
        None,
        None,
        19,
    ),
    "opset11_cubic": (X, dict(mode="cubic"), [1, 1, 1.5, 1.5], None, None, 11),
    "opset10_nearest_down": (X, dict(mode="nearest"), [1, 1, 0.5, 0.6], None, None, 10),
    "opset10_linear_up": (X, dict(mode="linear"), [1, 1, 2, 1.5], None, None, 10),
}


def _resize_model(shape, attrs, scales, sizes, roi, opset):
    consts, order = {}, ["x"]
    if opset == 10:
        consts["scales"] = np.array(scales, F)
        order.append("scales")
    else:
        empty = opset < 13
        if roi is not None or empty:
            consts["roi"] = np.array(roi or [], F)
        order.append("roi" if "roi" in consts else "")
        if scales is not None or empty:
            consts["scales"] = np.array(scales or [], F)
        order.append("scales" if "scales" in consts else "")
        if sizes is not None:
            consts["sizes"] = np.array(sizes, np.int64)
            order.append("sizes")
    return (
        single_node_model("Resize", {"x": shape}, consts, opset=opset, input_order=order, **attrs),
        consts,
        order,
    )


def _check_fold(model, feeds, consts, order, attrs, opset, op="Resize"):
    """The numpy `evaluate` (used for constant folding) matches onnxruntime too."""
    ref = reference(model, feeds)[0]
    node = Node(op, "n", order, ["y"], dict(attrs))
    arrays = [feeds.get(n, consts.get(n)) if n else None for n in order]
    got = lookup(op, opset).evaluate(node, arrays, opset)[0]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4 * max(np.abs(ref).max(), 1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_resize_matches_onnxruntime(name):
    shape, attrs, scales, sizes, roi, opset = CASES[name]
    model, consts, order = _resize_model(shape, attrs, scales, sizes, roi, opset)
    feeds = random_inputs({"x": shape})
    _check_fold(model, feeds, consts, order, attrs, opset)
    assert_matches(model, feeds)


def test_resize_tf_half_pixel_for_nearest():
    """onnxruntime and onnx's reference dropped this transform: check it against its
    definition, x_original = (x + 0.5) / scale, rounded by nearest_mode and clamped."""
    import infer

    attrs = dict(coordinate_transformation_mode="tf_half_pixel_for_nearest")
    for nearest_mode, rnd, scales in (
        ("ceil", np.ceil, [1, 1, 1.5, 0.5]),
        ("round_prefer_floor", lambda v: np.ceil(v - 0.5), [1, 1, 2, 3]),
    ):
        model, _, _ = _resize_model(
            X, dict(attrs, nearest_mode=nearest_mode), scales, None, None, 11
        )
        x = random_inputs({"x": X})["x"]
        ref = x
        for axis, s in enumerate(scales):  # every axis, scale 1 included (ceil moves it)
            src = rnd((np.arange(int(X[axis] * s)) + 0.5) / F(s))
            ref = np.take(ref, np.clip(src, 0, X[axis] - 1).astype(int), axis=axis)
        np.testing.assert_array_equal(infer.load(model).run(x), ref)


@pytest.mark.parametrize(
    "opset, mode, scales",
    [(9, "nearest", [1, 1, 2, 3]), (9, "linear", [1, 1, 2, 1.5]), (7, "nearest", [1, 1, 3, 2])],
)
def test_upsample_matches_onnxruntime(opset, mode, scales):
    inputs = {"x": X}
    if opset >= 9:
        consts, order, attrs = {"scales": np.array(scales, F)}, ["x", "scales"], {}
    else:
        consts, order, attrs = {}, ["x"], {"scales": [float(s) for s in scales]}
    model = single_node_model(
        "Upsample", inputs, consts, opset=opset, input_order=order, mode=mode, **attrs
    )
    feeds = random_inputs(inputs)
    _check_fold(model, feeds, consts, order, {"mode": mode, **attrs}, opset, "Upsample")
    assert_matches(model, feeds)


def test_resize_antialias_not_supported():
    import infer
    from infer.errors import UnsupportedModelError

    model, _, _ = _resize_model(
        X, dict(mode="linear", antialias=1), [1, 1, 0.5, 0.5], None, None, 18
    )
    with pytest.raises(UnsupportedModelError, match="antialias"):
        infer.load(model).run(random_inputs({"x": X})["x"])

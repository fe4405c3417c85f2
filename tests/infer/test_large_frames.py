"""A 1080p frame through a 64-channel network: each 64-channel map (530 MB in fp32) is over
lavapipe's 128 MiB storage-binding limit (265 MB in fp16 storage), so the conv kernels must
work band by band."""

import numpy as np
import pytest

from .onnx_helpers import reference

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def _two_layer_model():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 3, 3, 3)).astype(np.float32) * 0.3, "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(64).astype(np.float32) * 0.1, "b1")
    w2 = numpy_helper.from_array(
        rng.standard_normal((12, 64, 3, 3)).astype(np.float32) * 0.05, "w2"
    )
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2"], ["y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w1, b1, w2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("precision, rtol", [("fp32", 1e-4), ("fp16", 5e-3)])
def test_1080p_through_64_channels_runs_band_by_band(precision, rtol):
    import infer

    model = _two_layer_model()
    m = infer.load(model, precision=precision)
    shape = (1, 3, 1080, 1920)
    program = m.program({"x": shape})
    limit = m.device.limits["max-storage-buffer-binding-size"]
    esize = 2 if precision == "fp16" else 4
    assert limit < 1080 * 1920 * 64 * esize, "test premise: the 64-channel map exceeds one binding"
    assert len(program.dispatches) > 2, "the big convs were not split into bands"
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    got = m.run(x)
    ref = reference(model, {"x": x})[0]
    assert got.shape == ref.shape == (1, 12, 1080, 1920)
    assert float(np.abs(got - ref).max() / np.abs(ref).max()) < rtol

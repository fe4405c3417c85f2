"""Every user architecture of the zoo runs through the frame pipeline (colour pass, model,
colour pass), at its scale (the x2 models at 2x, the x4 ones at 4x, the NAFNet restorer at
1x), and its output is the model's own on the frame's RGB.

The RGB input is taken from a bypass pipeline: in the model's pipeline the input tensor's
buffer may be reused by a later tensor once the model has read it (the planner frees it), so
what `keep_tensors` reads back there as "rgb_in" is only the input for models that read it
until the end (a residual over the input)."""

from __future__ import annotations

import numpy as np
import pytest

import infer
from stream.pipeline import FramePipeline
from stream.sources.frames import frame_from_planes

pytestmark = pytest.mark.gpu
pytest.importorskip("torch", reason="the zoo needs torch (the train extra)")

from infer.training.zoo import ARCHS, EXPORT_OPSET  # noqa: E402

W, H = 32, 24  # even (yuv420p), multiples of 8 (HAT, SAFMN)


def random_frame(seed: int, width: int, height: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(16, 236, (height, width), dtype=np.uint8)
    u = rng.integers(16, 241, (height // 2, width // 2), dtype=np.uint8)
    v = rng.integers(16, 241, (height // 2, width // 2), dtype=np.uint8)
    return frame_from_planes(y, u, v)


@pytest.mark.parametrize("name", list(ARCHS))
async def test_zoo_model_through_the_pipeline(name, zoo_onnx):
    model = infer.load(zoo_onnx[(name, EXPORT_OPSET)])
    frame = random_frame(5, W, H)
    bypass = FramePipeline(mode="bypass", keep_tensors=True)
    pipe = FramePipeline(model, keep_tensors=True)
    try:
        await bypass.process(frame)
        out = await pipe.process(frame)
        scale = ARCHS[name].scale
        assert (out.width, out.height) == (scale * W, scale * H)
        ref = model.run(bypass.last_tensors["rgb_in"])
        rgb_out = pipe.last_tensors["rgb_out"]
        assert rgb_out.shape == ref.shape == (1, 3, scale * H, scale * W)
        assert float(np.abs(rgb_out - ref).max() / np.abs(ref).max()) < 1e-4
    finally:
        pipe.close()
        bypass.close()

"""Classic scaling baselines (bilinear, bicubic) as tiny ONNX Resize models.

Running the baseline through the same engine as the CNN keeps the comparison fair: same
upload, colour passes, readback and encoder; only the middle differs. The pipeline's mode
bilinear no longer runs this (its output colour pass scales, plan.py: one pass and an
output-sized tensor fewer); `FramePipeline(baseline_model("bilinear", 2))` still does.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import infer


def baseline_onnx(mode: str, scale: int) -> onnx.ModelProto:
    scales = numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales")
    node = helper.make_node(
        "Resize",
        ["input", "", "scales"],
        ["output"],
        mode="linear" if mode == "bilinear" else "cubic",
        coordinate_transformation_mode="half_pixel",
        cubic_coeff_a=-0.5,
    )
    graph = helper.make_graph(
        [node],
        f"{mode}_x{scale}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
        [scales],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def baseline_model(mode: str, scale: int, adapter: int | None = None) -> infer.Model:
    return infer.load(baseline_onnx(mode, scale), adapter=adapter)

"""Cost per frame of every method in the evaluation table, in arithmetic operations for one
1920x1080 output frame, so a user can weigh quality against work.

ONNX models are counted from the graph itself (any model, not only ours): shapes inferred at
the input size a 1080p output needs, a Conv as 2 * (kernel area * input channels / groups)
per output element plus its bias, every other op as one operation per output element (the
convention of models.count_flops, which this matches on our own models). The classic
scalers are counted per output pixel from their algorithm (separable filters as run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from .edge_adaptive import ops_per_1080p

OUT_HW = (1080, 1920)

# per output pixel, 3 channels, separable as PIL and the engine run them: taps multiplies
# and taps - 1 adds per pass, two passes
CLASSIC_OPS_PER_PIXEL = {"bilinear": 3 * 2 * (2 + 1), "bicubic": 3 * 2 * (4 + 3)}


def classic_flops(method: str) -> float:
    if method == "edge":
        return ops_per_1080p()
    return float(CLASSIC_OPS_PER_PIXEL[method] * OUT_HW[0] * OUT_HW[1])


def onnx_flops(path: str | Path, scale: int = 2, out_hw: tuple[int, int] = OUT_HW) -> float:
    """Operations for one output frame of `out_hw` (input = out_hw / scale, batch 1)."""
    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    first = next(i for i in graph.input if i.name not in inits)
    dims = first.type.tensor_type.shape.dim
    shape = [1, int(dims[1].dim_value or 3), out_hw[0] // scale, out_hw[1] // scale]
    for d, v in zip(dims, shape, strict=True):
        d.ClearField("dim_param")
        d.dim_value = v
    for out in graph.output:  # let inference fill the output's shape
        out.type.tensor_type.ClearField("shape")
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    shapes: dict[str, list[int]] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    weights = {i.name: i.dims for i in graph.initializer}
    total = 0.0
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            continue
        out = shapes.get(node.output[0])
        if not out or 0 in out:
            raise ValueError(f"{path}: no shape for {node.op_type} {node.name!r} at {shape}")
        n = float(np.prod(out))
        if node.op_type == "Conv":
            w = list(weights[node.input[1]])
            k = int(np.prod(w[1:]))  # input channels / groups * kernel area
            total += n * (2 * k + (1 if len(node.input) > 2 and node.input[2] else 0))
        else:
            total += n
    return total

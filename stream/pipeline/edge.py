"""The `edge` mode: an edge-adaptive classic upscaler in the model's place.

AMD FidelityFX Super Resolution 1.0 (T. Lottes, GPUOpen 2021, MIT): EASU, edge-directed
interpolation with a Lanczos-2-like kernel turned along the local edge
(shaders/colour/edge_easu.wgsl), then RCAS, contrast-adaptive sharpening limited so it never
clips (edge_rcas.wgsl). It is what games ship as a spatial upscaler, so it is the classic
method the CNNs are measured against (infer/training/evaluate.py evaluates the same
algorithm through its numpy twin, infer/training/edge_adaptive.py; tests/stream/
test_edge_mode.py holds this GPU output to that reference).

The stage reads the RGB tensor yuv_to_rgb.wgsl writes and leaves an RGB tensor of the output
size for rgb_to_yuv.wgsl: two dispatches, no model, always f32.
"""

from __future__ import annotations

from typing import Any

import wgpu

from . import shaders

SHARPNESS = 0.2  # RCAS strength in stops (0 = strongest); the evaluation uses the same
RCAS_LIMIT = 0.25 - 1.0 / 16.0  # the most negative lobe RCAS allows (FSR_RCAS_LIMIT)
TEXEL = 16  # bytes of one RGB texel (vec4<f32>)

_U = wgpu.BufferUsage


def _groups(n: int, size: int) -> int:
    return (n + size - 1) // size


class EdgeStage:
    """The buffers and the two dispatches of the edge-adaptive upscaler for one frame size.

    `rgb_in` (width x height) is what the colour pass writes, `rgb_out` (times `scale`) what
    the output colour pass reads; `dispatches` are (pipeline, grid, bind group) in order.
    """

    def __init__(
        self, dev: Any, width: int, height: int, scale: int, sharpness: float = SHARPNESS
    ) -> None:
        d = dev.device
        self.out_size = (width * scale, height * scale)
        ow, oh = self.out_size
        usage = _U.STORAGE | _U.COPY_SRC
        self.rgb_in = d.create_buffer(size=width * height * TEXEL, usage=usage)
        self.upscaled = d.create_buffer(size=ow * oh * TEXEL, usage=usage)
        self.rgb_out = d.create_buffer(size=ow * oh * TEXEL, usage=usage)
        easu_src = shaders.render(
            "edge_easu.wgsl",
            {"in_width": width, "in_height": height, "out_width": ow, "out_height": oh},
        )
        rcas_src = shaders.render(
            "edge_rcas.wgsl",
            {"width": ow, "height": oh, "limit": RCAS_LIMIT, "strength": 2.0**-sharpness},
        )
        easu = dev.pipeline(easu_src, "edge_easu")
        rcas = dev.pipeline(rcas_src, "edge_rcas")
        grid = (_groups(ow, 8), _groups(oh, 8), 1)
        self.dispatches: list[tuple[wgpu.GPUComputePipeline, tuple[int, int, int], Any]] = [
            (easu, grid, self._group(d, easu, self.rgb_in, self.upscaled)),
            (rcas, grid, self._group(d, rcas, self.upscaled, self.rgb_out)),
        ]

    @staticmethod
    def _group(
        d: wgpu.GPUDevice, pipeline: wgpu.GPUComputePipeline, src: Any, dst: Any
    ) -> wgpu.GPUBindGroup:
        entries = [
            {"binding": k, "resource": {"buffer": b, "offset": 0, "size": b.size}}
            for k, b in enumerate((src, dst))
        ]
        return d.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=entries)

    def release(self) -> None:
        for b in (self.rgb_in, self.upscaled, self.rgb_out):
            b.destroy()

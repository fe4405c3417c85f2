"""Everything the GPU needs for one (input size, pixel format, colour) combination: plane
textures and readback buffers per slot, the colour passes, the model specialised for the size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import av
import numpy as np
import wgpu

from . import shaders
from .colour import Colour

if TYPE_CHECKING:
    from .frame_pipeline import FramePipeline

_U = wgpu.BufferUsage
_T = wgpu.TextureUsage


class PipelineError(Exception):
    """A frame or model the pipeline cannot handle, with what to do about it."""


@dataclass
class Slot:
    textures: list[wgpu.GPUTexture]
    to_rgb: wgpu.GPUBindGroup
    readback: wgpu.GPUBuffer


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """A frame size times `scale`, at least 16 px a side (1.0: the size itself)."""
    if scale >= 1.0:
        return width, height
    return max(16, round(width * scale)), max(16, round(height * scale))


class Plan:
    """Everything for one (input size, pixel format, colour) combination."""

    def __init__(
        self,
        pipe: FramePipeline,
        width: int,
        height: int,
        fmt: str,
        colour: Colour,
        scale: float = 1.0,
    ) -> None:
        dev = pipe.device
        d = self.d = dev.device
        self.width, self.height, self.fmt, self.colour = width, height, fmt, colour
        self.scale = scale if pipe.model is not None and pipe.mode == "model" else 1.0
        # the model's input: the frame, or scaled down (dynamic resolution, adapt.py)
        self.rgb_w, self.rgb_h = scaled_size(width, height, self.scale)
        self.exe = pipe.executable_for(self.rgb_w, self.rgb_h)
        # the RGB tensors are the model's, in its storage type (f32, or f16 at fp16)
        self.scalar, self.dtype = (
            (self.exe.scalar, self.exe.dtype) if self.exe else ("f32", np.float32)
        )
        vec = 4 * (self.exe.esize if self.exe else 4)  # bytes of one RGB(A) texel
        if self.exe is not None:
            xin, yout = self.exe.gpu_inputs[0], self.exe.outputs[0]
            out_shape = self.exe.shape(yout)
            if self.exe.shape(xin)[1] != 3 or out_shape[1] != 3:
                raise PipelineError(
                    f"model must map RGB to RGB (NCHW with 3 channels); it takes "
                    f"{self.exe.shape(xin)} and gives {out_shape}"
                )
            self.rgb_in = self.exe.tensor_buffer(xin)
            self.rgb_out = self.exe.tensor_buffer(yout)
            # the model's own output, and the output frame: the size a full-scale input gives
            self.src_w, self.src_h = out_shape[3], out_shape[2]
            self.out_w = round(width * self.src_w / self.rgb_w)
            self.out_h = round(height * self.src_h / self.rgb_h)
        else:
            self.rgb_in = self.rgb_out = d.create_buffer(
                size=width * height * vec, usage=_U.STORAGE | _U.COPY_SRC
            )
            self.out_w, self.out_h = self.src_w, self.src_h = width, height
        self.rgb_in_bytes = self.rgb_w * self.rgb_h * vec
        self.rgb_out_bytes = self.src_w * self.src_h * vec
        # output planes packed with the line sizes PyAV will use, so a plane is one copy
        probe = av.VideoFrame(self.out_w, self.out_h, "yuv420p")
        self.pitches = [p.line_size for p in probe.planes]
        self.plane_rows = [p.height for p in probe.planes]
        self.plane_offsets = [0]
        for pitch, rows in zip(self.pitches, self.plane_rows, strict=True):
            self.plane_offsets.append(self.plane_offsets[-1] + pitch * rows)
        self.planes_bytes = (self.plane_offsets[-1] + 255) // 256 * 256
        self.planes = d.create_buffer(size=self.planes_bytes, usage=_U.STORAGE | _U.COPY_SRC)
        cvars = {
            **colour.shader_vars(),
            "h_center": pipe.chroma_siting == "center",
            "S": self.scalar,
        }
        to_rgb_src = shaders.render(
            "yuv_to_rgb.wgsl",
            {
                "width": width,
                "height": height,
                "out_width": self.rgb_w,
                "out_height": self.rgb_h,
                "nv12": fmt == "nv12",
                **cvars,
            },
        )
        self.to_rgb = dev.pipeline(to_rgb_src, "yuv_to_rgb")
        to_yuv_src = shaders.render(
            "rgb_to_yuv.wgsl",
            {
                "width": self.out_w,
                "height": self.out_h,
                "src_width": self.src_w,
                "src_height": self.src_h,
                "y_pitch": self.pitches[0],
                "c_pitch": self.pitches[1],
                "cb_offset": self.plane_offsets[1],
                "cr_offset": self.plane_offsets[2],
                **cvars,
            },
        )
        self.luma = dev.pipeline(to_yuv_src, "rgb_to_yuv", "luma")
        self.chroma = dev.pipeline(to_yuv_src, "rgb_to_yuv", "chroma")
        self.luma_group = self._group(self.luma, [self.rgb_out, self.planes])
        self.chroma_group = self._group(self.chroma, [self.rgb_out, self.planes])
        self.timestamps = "timestamp-query" in dev.features
        self.queries = (
            d.create_query_set(type="timestamp", count=2 * pipe.slots) if self.timestamps else None
        )
        self.resolve = (
            d.create_buffer(size=256 * pipe.slots, usage=_U.QUERY_RESOLVE | _U.COPY_SRC)
            if self.timestamps
            else None
        )
        self.debug = pipe.keep_tensors
        rb_size = self.planes_bytes + 256
        if self.debug:
            rb_size += self.rgb_in_bytes + self.rgb_out_bytes
        self.slots = [self._slot(d, rb_size) for _ in range(pipe.slots)]

    def release(self) -> None:
        """Free this plan's GPU memory now (textures, staging and readback buffers); the
        model's tensors belong to its Executable, which infer caches and frees itself."""
        owned: list[wgpu.GPUBuffer | wgpu.GPUTexture | None] = [self.planes, self.resolve]
        if self.exe is None:
            owned.append(self.rgb_in)
        for s in self.slots:
            owned += [*s.textures, s.readback]
        for obj in owned:
            if obj is not None:
                obj.destroy()
        if self.queries is not None:
            self.queries.destroy()
        self.slots = []

    def _group(self, pipeline: wgpu.GPUComputePipeline, buffers: list) -> wgpu.GPUBindGroup:
        entries = [
            {"binding": k, "resource": {"buffer": b, "offset": 0, "size": b.size}}
            for k, b in enumerate(buffers)
        ]
        return self.d.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=entries)

    def _slot(self, d: wgpu.GPUDevice, rb_size: int) -> Slot:
        cw, ch = (self.width + 1) // 2, (self.height + 1) // 2
        usage = _T.TEXTURE_BINDING | _T.COPY_DST
        textures = [
            d.create_texture(size=(self.width, self.height, 1), format="r8unorm", usage=usage)
        ]
        if self.fmt == "nv12":
            textures.append(d.create_texture(size=(cw, ch, 1), format="rg8unorm", usage=usage))
            bindings = [0, 1]
        else:
            textures += [
                d.create_texture(size=(cw, ch, 1), format="r8unorm", usage=usage) for _ in range(2)
            ]
            bindings = [0, 1, 2]
        entries = [
            {"binding": b, "resource": t.create_view()}
            for b, t in zip(bindings, textures, strict=True)
        ]
        entries.append(
            {
                "binding": 3,
                "resource": {"buffer": self.rgb_in, "offset": 0, "size": self.rgb_in_bytes},
            }
        )
        group = d.create_bind_group(layout=self.to_rgb.get_bind_group_layout(0), entries=entries)
        readback = d.create_buffer(size=rb_size, usage=_U.MAP_READ | _U.COPY_DST)
        return Slot(textures, group, readback)


def debug_tensors(plan: Plan, data: np.ndarray) -> dict[str, np.ndarray]:
    off = plan.planes_bytes + 256
    rin: np.ndarray = np.frombuffer(data[off : off + plan.rgb_in_bytes].tobytes(), plan.dtype)
    rout: np.ndarray = np.frombuffer(
        data[off + plan.rgb_in_bytes : off + plan.rgb_in_bytes + plan.rgb_out_bytes].tobytes(),
        plan.dtype,
    )
    rin, rout = rin.astype(np.float32), rout.astype(np.float32)
    rin = rin.reshape(plan.rgb_h, plan.rgb_w, 4)[..., :3].transpose(2, 0, 1)[None]
    rout = rout.reshape(plan.src_h, plan.src_w, 4)[..., :3].transpose(2, 0, 1)[None]
    return {"rgb_in": np.ascontiguousarray(rin), "rgb_out": np.ascontiguousarray(rout)}

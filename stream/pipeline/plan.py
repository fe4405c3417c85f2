"""Everything the GPU needs for one (input size, pixel format, colour, model scale): plane
textures and readback buffers per slot, the passes of a frame, the model specialised for the
size.

Two shapes of frame:
- through RGB (modes model, bicubic, bilinear, bypass): yuv_to_rgb.wgsl writes the model's
  input tensor (scaled down when dynamic resolution asks), the model's passes run, and
  rgb_to_yuv.wgsl writes the output planes (scaling the model's output to the constant output
  size when needed); mode edge runs edge.py's two passes (FSR 1) in the model's place; mode
  bilinear runs no model: rgb_to_yuv's own bilinear mix (half-pixel centres, edges clamped:
  ONNX Resize's linear) scales the frame's RGB to the output as it writes the planes, so 2x
  costs three dispatches and no output-sized RGB tensor (on lavapipe the Resize pass and that
  tensor were 3/4 of a 720p frame's GPU time);
- planar (mode planar): scale_planes.wgsl scales each Y'CbCr plane straight into the output
  planes, no RGB at all: the cheapest 2x, the adaptation's fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import av
import numpy as np
import wgpu

from . import shaders
from .colour import Colour
from .edge import EdgeStage

if TYPE_CHECKING:
    from .frame_pipeline import FramePipeline

_U = wgpu.BufferUsage
_T = wgpu.TextureUsage


class PipelineError(Exception):
    """A frame or model the pipeline cannot handle, with what to do about it."""


@dataclass
class Slot:
    textures: list[wgpu.GPUTexture]
    groups: list[wgpu.GPUBindGroup]  # of the passes that read the textures
    readback: wgpu.GPUBuffer


@dataclass(frozen=True)
class Pass:
    """One dispatch of a frame: its pipeline, its grid, and which bind group it takes (a
    slot's, by index, or the plan's own)."""

    pipeline: wgpu.GPUComputePipeline
    grid: tuple[int, int, int]
    slot_group: int | None = None
    group: wgpu.GPUBindGroup | None = None


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """A frame size times `scale`, at least 16 px a side (1.0: the size itself)."""
    if scale >= 1.0:
        return width, height
    return max(16, round(width * scale)), max(16, round(height * scale))


def _groups(n: int, size: int) -> int:
    return (n + size - 1) // size


class Plan:
    """Everything for one (input size, pixel format, colour, model scale) combination."""

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
        self.dev = dev
        d = self.d = dev.device
        self.width, self.height, self.fmt, self.colour = width, height, fmt, colour
        self.planar = pipe.mode == "planar"
        self.scale = scale if pipe.model is not None and pipe.mode == "model" else 1.0
        # the model's input: the frame, or scaled down (dynamic resolution, adapt.py)
        self.rgb_w, self.rgb_h = scaled_size(width, height, self.scale)
        first = pipe.plans_made == 0  # no frame of this pipeline is running yet
        self.exe = None if self.planar else pipe.executable_for(self.rgb_w, self.rgb_h, first)
        # the RGB tensors are the model's, in its storage type (f32, or f16 at fp16)
        self.scalar, self.dtype = (
            (self.exe.scalar, self.exe.dtype) if self.exe else ("f32", np.float32)
        )
        self.vec = 4 * (self.exe.esize if self.exe else 4)  # bytes of one RGB(A) texel
        self.rgb_in: wgpu.GPUBuffer | None = None
        self.edge: EdgeStage | None = None  # mode edge: FSR 1
        self.rgb_out: wgpu.GPUBuffer | None = None
        self._sizes(pipe)
        # output planes packed with the line sizes PyAV will use, so a plane is one copy
        probe = av.VideoFrame(self.out_w, self.out_h, "yuv420p")
        self.pitches = [p.line_size for p in probe.planes]
        self.plane_rows = [p.height for p in probe.planes]
        self.plane_offsets = [0]
        for pitch, rows in zip(self.pitches, self.plane_rows, strict=True):
            self.plane_offsets.append(self.plane_offsets[-1] + pitch * rows)
        self.planes_bytes = (self.plane_offsets[-1] + 255) // 256 * 256
        self.planes = d.create_buffer(size=self.planes_bytes, usage=_U.STORAGE | _U.COPY_SRC)
        planes_vars = {
            "width": self.out_w,
            "height": self.out_h,
            "y_pitch": self.pitches[0],
            "c_pitch": self.pitches[1],
            "cb_offset": self.plane_offsets[1],
            "cr_offset": self.plane_offsets[2],
        }
        self.passes = (
            self._planar_passes(planes_vars)
            if self.planar
            else self._colour_passes(pipe, planes_vars)
        )
        self.timestamps = "timestamp-query" in dev.features
        self.queries = (
            d.create_query_set(type="timestamp", count=2 * pipe.slots) if self.timestamps else None
        )
        self.resolve = (
            d.create_buffer(size=256 * pipe.slots, usage=_U.QUERY_RESOLVE | _U.COPY_SRC)
            if self.timestamps
            else None
        )
        self.debug = pipe.keep_tensors and not self.planar
        rb_size = self.planes_bytes + 256
        if self.debug:
            rb_size += self.rgb_in_bytes + self.rgb_out_bytes
        self.slots = [self._slot(d, rb_size) for _ in range(pipe.slots)]

    def _sizes(self, pipe: FramePipeline) -> None:
        """The RGB tensors' sizes (the model's input and output) and the output frame's."""
        if self.planar:
            self.src_w, self.src_h = self.out_w, self.out_h = (
                round(self.width * pipe.scale),
                round(self.height * pipe.scale),
            )
        elif self.exe is not None:
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
            self.out_w = round(self.width * self.src_w / self.rgb_w)
            self.out_h = round(self.height * self.src_h / self.rgb_h)
        elif pipe.mode == "edge":  # the edge-adaptive scaler in the model's place
            self.edge = EdgeStage(self.dev, self.width, self.height, pipe.scale)
            self.rgb_in, self.rgb_out = self.edge.rgb_in, self.edge.rgb_out
            self.out_w, self.out_h = self.src_w, self.src_h = self.edge.out_size
        else:  # bypass, bilinear: the colour passes alone, the second one scaling
            self.rgb_in = self.rgb_out = self.d.create_buffer(
                size=self.width * self.height * self.vec, usage=_U.STORAGE | _U.COPY_SRC
            )
            self.src_w, self.src_h = self.width, self.height
            k = pipe.scale if pipe.mode == "bilinear" else 1
            self.out_w, self.out_h = round(self.width * k), round(self.height * k)
        self.rgb_in_bytes = self.rgb_w * self.rgb_h * self.vec
        self.rgb_out_bytes = self.src_w * self.src_h * self.vec

    def _colour_passes(self, pipe: FramePipeline, planes_vars: dict[str, int]) -> list[Pass]:
        assert self.rgb_out is not None
        cvars = {
            **self.colour.shader_vars(),
            "h_center": pipe.chroma_siting == "center",
            "S": self.scalar,
        }
        to_rgb_src = shaders.render(
            "yuv_to_rgb.wgsl",
            {
                "width": self.width,
                "height": self.height,
                "out_width": self.rgb_w,
                "out_height": self.rgb_h,
                "nv12": self.fmt == "nv12",
                **cvars,
            },
        )
        self.to_rgb = self.dev.pipeline(to_rgb_src, "yuv_to_rgb")
        to_yuv_src = shaders.render(
            "rgb_to_yuv.wgsl",
            {
                **planes_vars,
                "src_width": self.src_w,
                "src_height": self.src_h,
                "x2": (self.out_w, self.out_h) == (2 * self.src_w, 2 * self.src_h),
                **cvars,
            },
        )
        luma = self.dev.pipeline(to_yuv_src, "rgb_to_yuv", "luma")
        chroma = self.dev.pipeline(to_yuv_src, "rgb_to_yuv", "chroma")
        cw, ch = (self.out_w + 1) // 2, (self.out_h + 1) // 2
        # the edge mode's passes between the colour passes (none in other modes)
        middle = [
            Pass(p, grid, group=g) for p, grid, g in (self.edge.dispatches if self.edge else [])
        ]
        # at the frame's own size one invocation makes a 2x2 block (yuv_to_rgb.wgsl)
        same = (self.rgb_w, self.rgb_h) == (self.width, self.height)
        rw, rh = (self.rgb_w, self.rgb_h)
        if same:
            rw, rh = (rw + 1) // 2, (rh + 1) // 2
        return [
            Pass(self.to_rgb, (_groups(rw, 8), _groups(rh, 8), 1), slot_group=0),
            *middle,
            Pass(luma, (_groups(self.out_w, 64), _groups(self.out_h, 4), 1),
                 group=self._group(luma, [self.rgb_out, self.planes])),
            Pass(chroma, (_groups(cw, 64), _groups(ch, 4), 1),
                 group=self._group(chroma, [self.rgb_out, self.planes])),
        ]  # fmt: skip

    def _planar_passes(self, planes_vars: dict[str, int]) -> list[Pass]:
        src = shaders.render(
            "scale_planes.wgsl",
            {
                **planes_vars,
                "in_width": self.width,
                "in_height": self.height,
                "nv12": self.fmt == "nv12",
            },
        )
        luma = self.dev.pipeline(src, "scale_planes", "luma")
        chroma = self.dev.pipeline(src, "scale_planes", "chroma")
        cw, ch = (self.out_w + 1) // 2, (self.out_h + 1) // 2
        return [
            Pass(luma, (_groups(self.out_w, 64), _groups(self.out_h, 4), 1), slot_group=0),
            Pass(chroma, (_groups(cw, 64), _groups(ch, 4), 1), slot_group=1),
        ]

    @property
    def dispatches(self) -> int:
        """Dispatches a frame of this plan records (all in one compute pass, one submit)."""
        return len(self.passes) + (len(self.exe.steps) if self.exe is not None else 0)

    def encode(self, cp: wgpu.GPUComputePassEncoder, slot: Slot) -> None:
        """Record this frame's dispatches: the passes around the model, and the model's."""
        for k, p in enumerate(self.passes):
            if k == 1 and self.exe is not None:
                self.exe.encode_pass(cp)  # between the input and output colour passes
            cp.set_pipeline(p.pipeline)
            group = slot.groups[p.slot_group] if p.slot_group is not None else p.group
            cp.set_bind_group(0, group)
            cp.dispatch_workgroups(*p.grid)

    def release(self) -> None:
        """Free this plan's GPU memory now (textures, staging and readback buffers); the
        model's tensors belong to its Executable, which infer caches and frees itself."""
        owned: list[wgpu.GPUBuffer | wgpu.GPUTexture | None] = [self.planes, self.resolve]
        if self.edge is not None:
            self.edge.release()
        elif self.exe is None:
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
        else:
            textures += [
                d.create_texture(size=(cw, ch, 1), format="r8unorm", usage=usage) for _ in range(2)
            ]
        views = {k: t.create_view() for k, t in enumerate(textures)}
        if self.planar:
            out = {"buffer": self.planes, "offset": 0, "size": self.planes_bytes}
            # auto layouts keep only the bindings an entry point uses: luma reads the Y
            # texture, chroma the others; both write the planes
            groups = [
                self._bind(self.passes[0].pipeline, {0: views[0], 3: out}),
                self._bind(
                    self.passes[1].pipeline, {**{k: v for k, v in views.items() if k}, 3: out}
                ),
            ]
        else:
            assert self.rgb_in is not None
            rgb = {"buffer": self.rgb_in, "offset": 0, "size": self.rgb_in_bytes}
            groups = [self._bind(self.to_rgb, {**views, 3: rgb})]
        readback = d.create_buffer(size=rb_size, usage=_U.MAP_READ | _U.COPY_DST)
        return Slot(textures, groups, readback)

    def _bind(
        self, pipeline: wgpu.GPUComputePipeline, resources: dict[int, object]
    ) -> wgpu.GPUBindGroup:
        entries = [{"binding": k, "resource": r} for k, r in sorted(resources.items())]
        return self.d.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=entries)


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

"""Run a Program on a Device: buffers planned by liveness, one command buffer per call."""

from __future__ import annotations

import hashlib

import numpy as np
import wgpu

from . import wgsl
from .compile import Program
from .device import Device, time_dispatch
from .errors import ModelError
from .layout import buffer_bytes, element_size, from_physical, storage, to_physical

_U = wgpu.BufferUsage
_TENSOR_USAGE = _U.STORAGE | _U.COPY_SRC | _U.COPY_DST
_CONST_USAGE = _U.STORAGE | _U.UNIFORM | _U.COPY_DST


class ConstantStore:
    """Weights and parameters uploaded once per model, shared by all its specialisations."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self._buffers: dict[tuple[str, str], wgpu.GPUBuffer] = {}

    def buffer(self, key: str, array: np.ndarray) -> wgpu.GPUBuffer:
        digest = hashlib.sha1(array.tobytes()).hexdigest()
        buf = self._buffers.get((key, digest))
        if buf is None:
            buf = self.device.device.create_buffer_with_data(
                data=array.tobytes(), usage=_CONST_USAGE, label=key
            )
            self._buffers[(key, digest)] = buf
        return buf

    @property
    def nbytes(self) -> int:
        return sum(b.size for b in self._buffers.values())


def plan_buffers(program: Program) -> dict[str, tuple[int, int]]:
    """Assign each GPU tensor a (pool slot, size) so that tensors not alive at once share memory.

    Inputs are live from the start, outputs to the end; a dispatch's outputs are allocated
    before its inputs are released, so no kernel reads and writes the same memory. A view
    (a Reshape of a row-major tensor) shares its root's slot, which stays alive until the
    last read of any of its views.
    """
    steps = program.dispatches
    esize = element_size(program.precision)
    root = program.root
    first: dict[str, int] = {n: -1 for n in program.gpu_inputs}
    last: dict[str, int] = {}
    for i, d in enumerate(steps):
        for b in d.bindings:
            if b.kind == "out":
                first.setdefault(root(b.ref), i)
            if b.kind in ("in", "out"):
                last[root(b.ref)] = i
    for name in program.graph.outputs:
        if root(name) in first:
            last[root(name)] = len(steps)
    free: list[tuple[int, int]] = []  # (size, slot)
    slots: list[int] = []
    where: dict[str, tuple[int, int]] = {}

    def alloc(name: str) -> None:
        v = program.values[name]
        size = buffer_bytes(v.shape, esize, v.layout)
        size = (size + 255) // 256 * 256
        best = None
        for k, (fsize, _slot) in enumerate(free):
            if fsize >= size and (best is None or fsize < free[best][0]):
                best = k
        if best is not None:
            _, slot = free.pop(best)
        else:
            slot = len(slots)
            slots.append(size)
        where[name] = (slot, size)

    for name in program.gpu_inputs:
        alloc(name)
    for i in range(len(steps)):
        for name, f in first.items():
            if f == i:
                alloc(name)
        for name, lst in last.items():
            if lst == i and name in where:
                slot, _ = where[name]
                free.append((slots[slot], slot))
    for view, base in program.aliases.items():
        if base in where:
            where[view] = where[base]
    return where


class Executable:
    """A Program bound to GPU resources: pipelines, pooled buffers, bind groups, readback."""

    def __init__(self, device: Device, program: Program, consts: ConstantStore) -> None:
        self.device = device
        self.program = program
        dev = device.device
        limit = device.limits["max-storage-buffer-binding-size"]
        # tensors are stored as `scalar` (WGSL) / `dtype` (numpy): f32, or f16 at fp16
        self.scalar, self.dtype = storage(program.precision)
        self.esize = element_size(program.precision)
        self.assignment = plan_buffers(program)
        sizes: dict[int, int] = {}
        for slot, size in self.assignment.values():
            sizes[slot] = max(sizes.get(slot, 0), size)
        self.pool = {s: dev.create_buffer(size=n, usage=_TENSOR_USAGE) for s, n in sizes.items()}
        self.pool_bytes = sum(sizes.values())
        self.steps: list[tuple[wgpu.GPUComputePipeline, wgpu.GPUBindGroup, tuple]] = []
        # kernels this Executable compiled rather than found compiled: none when the model
        # ran at another size before, as the kernels read the sizes from uniforms
        self.new_pipelines = 0
        for d in program.dispatches:
            try:
                source = wgsl.render(d.template, {**d.variables, "S": self.scalar})
                self.new_pipelines += not device.has_pipeline(source)
                pipeline = device.pipeline(source, d.label)
            except Exception as e:
                # an engine bug, but the caller still gets the engine's error, naming the node
                raise ModelError(
                    f"{d.label}: kernel {d.template} could not be built ({type(e).__name__}: {e})"
                ) from e
            entries = []
            for k, b in enumerate(d.bindings):
                if b.kind == "const":
                    arr = program.consts[b.ref]
                    buf = consts.buffer(b.ref, arr)
                    size = b.size if b.size is not None else buf.size - b.offset
                else:
                    buf = self.pool[self.assignment[b.ref][0]]
                    size = b.size if b.size is not None else self.nbytes(b.ref)
                    if size > limit:
                        raise ModelError(
                            f"{d.label}: tensor {b.ref!r} is {size / 2**20:.0f} MiB, over this "
                            f"device's {limit / 2**20:.0f} MiB storage binding limit, and this "
                            "kernel cannot split it; use a smaller input or tile the frame"
                        )
                entries.append(
                    {"binding": k, "resource": {"buffer": buf, "offset": b.offset, "size": size}}
                )
            group = dev.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=entries)
            self.steps.append((pipeline, group, d.grid))
        self.outputs = [o for o in program.graph.outputs if o in self.assignment]
        self.out_offsets: dict[str, tuple[int, int]] = {}
        total = 0
        for name in self.outputs:
            size = self.nbytes(name)
            self.out_offsets[name] = (total, size)
            total += (size + 255) // 256 * 256
        self.readback = (
            dev.create_buffer(size=max(total, 256), usage=_U.MAP_READ | _U.COPY_DST)
            if self.outputs
            else None
        )

    @property
    def gpu_inputs(self) -> list[str]:
        """Inputs read on the GPU, in order: what a caller fills in `tensor_buffer(name)`."""
        return list(self.program.gpu_inputs)

    def nbytes(self, name: str) -> int:
        """Bytes of a tensor in its buffer (physical layout, `dtype` elements)."""
        v = self.program.values[name]
        return buffer_bytes(v.shape, self.esize, v.layout)

    def tensor_buffer(self, name: str) -> wgpu.GPUBuffer:
        return self.pool[self.assignment[name][0]]

    def upload(self, inputs: dict[str, np.ndarray]) -> None:
        for name in self.program.gpu_inputs:
            layout = self.program.values[name].layout
            data: np.ndarray = to_physical(inputs[name], layout).astype(self.dtype, copy=False)
            self.device.queue.write_buffer(self.tensor_buffer(name), 0, data)

    def shape(self, name: str) -> tuple[int, ...]:
        """Logical (NCHW) shape of a tensor of this specialisation."""
        return self.program.values[name].shape

    def encode_pass(self, compute_pass: wgpu.GPUComputePassEncoder) -> None:
        """Record every dispatch of the model into the caller's compute pass.

        Inputs are read from, and outputs written to, `tensor_buffer(name)` in the engine's
        layout (infer.layout: channels last, channels padded to 4), so a caller's own passes
        can fill the input and consume the output in the same command buffer.
        """
        for pipeline, group, grid in self.steps:
            compute_pass.set_pipeline(pipeline)
            compute_pass.set_bind_group(0, group)
            compute_pass.dispatch_workgroups(*grid)

    def encode(self, encoder: wgpu.GPUCommandEncoder) -> None:
        """Record the model as one compute pass of the caller's command encoder."""
        cp = encoder.begin_compute_pass()
        self.encode_pass(cp)
        cp.end()

    def submit(self, inputs: dict[str, np.ndarray]) -> None:
        enc = self.device.device.create_command_encoder()
        self.encode(enc)
        for name in self.outputs:
            off, size = self.out_offsets[name]
            enc.copy_buffer_to_buffer(self.tensor_buffer(name), 0, self.readback, off, size)
        self.device.queue.submit([enc.finish()])

    def read(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.readback is None:
            return out
        self.readback.map_sync(wgpu.MapMode.READ)
        try:
            raw: np.ndarray = np.frombuffer(self.readback.read_mapped(copy=True), self.dtype)
        finally:
            self.readback.unmap()
        for name in self.outputs:
            off, size = self.out_offsets[name]
            flat = raw[off // self.esize : (off + size) // self.esize]
            v = self.program.values[name]
            out[name] = self._typed(from_physical(flat, v.shape, v.layout), v.dtype)
        return out

    @staticmethod
    def _typed(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """A bool tensor comes back as 0.0 / 1.0 (how the GPU stores it): as bools; an integer
        one (TopK's indices) as the float of its value: as that integer type."""
        kind = np.dtype(dtype).kind
        if kind == "b":
            return arr != 0
        return np.rint(arr).astype(dtype) if kind in "iu" else arr

    def profile(self, inputs: dict[str, np.ndarray], repeats: int = 3) -> list[dict]:
        """Wall time of each dispatch, run alone and waited for (best of `repeats`)."""
        with self.device.lock:
            self.upload(inputs)
            rows = []
            for d, (pipeline, group, grid) in zip(self.program.dispatches, self.steps, strict=True):
                best = time_dispatch(self.device, pipeline, group, grid, self.pool[0], repeats)
                rows.append(
                    {
                        "label": d.label,
                        "kernel": d.template,
                        "variant": d.variant,
                        "ms": best * 1000,
                        "flops": d.flops,
                    }
                )
            return rows

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.device.lock:
            self.upload(inputs)
            self.submit(inputs)
            return self.read()

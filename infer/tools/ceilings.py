"""Measured ceilings of a device, for roofline charts: FMA compute peak and copy bandwidth.

Both kernels live in shaders/ops/ceilings.wgsl. Each measurement grows its dispatch until one
run takes at least `target_ms` (so fixed submit overhead does not dominate on a fast GPU)
and reports the best of `repeats` runs. Figures are what a simple kernel reaches, not a
datasheet peak: they are the ceilings our own kernels can fairly be compared with.
"""

from __future__ import annotations

import math

import numpy as np
import wgpu

from .. import wgsl
from ..device import Device, get_device, time_dispatch

_WG = 256
_CHAINS = 8
_ITERS = 256
_cache: dict[int, dict] = {}


def _grid(groups: int) -> tuple[int, int, int]:
    gx = min(groups, 65535)
    return gx, math.ceil(groups / gx), 1


def _source(pitch: int, n: int) -> str:
    return wgsl.render(
        "ceilings.wgsl", {"wg": _WG, "pitch": pitch, "chains": _CHAINS, "iters": _ITERS, "n": n}
    )


def compute_peak(
    device: Device, target_ms: float = 20.0, repeats: int = 3, max_groups: int = 1 << 16
) -> dict:
    """GFLOP/s of independent vec4 FMA chains (ITERS x CHAINS x 8 flops per invocation)."""
    dev = device.device
    groups = 16
    while True:
        gx, gy, _ = grid = _grid(groups)
        pitch = gx * _WG
        invocations = pitch * gy
        out = dev.create_buffer(
            size=invocations * 16, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC
        )
        pipe = device.pipeline(_source(pitch, invocations), "ceilings/fma", "fma_peak")
        group = dev.create_bind_group(
            layout=pipe.get_bind_group_layout(0),
            entries=[{"binding": 2, "resource": {"buffer": out, "offset": 0, "size": out.size}}],
        )
        t = time_dispatch(device, pipe, group, grid, out, 1 if groups < max_groups else repeats)
        if t * 1000 >= target_ms or groups >= max_groups:
            if groups < max_groups:
                t = min(t, time_dispatch(device, pipe, group, grid, out, repeats))
            flops = invocations * _ITERS * _CHAINS * 8
            out.destroy()
            return {"gflops": flops / t / 1e9, "flops": flops, "ms": t * 1000}
        out.destroy()
        groups = min(max_groups, groups * max(2, int(target_ms / max(t * 1000, 1e-3))))


def bandwidth(
    device: Device, target_ms: float = 10.0, repeats: int = 3, max_mib: int = 256
) -> dict:
    """GB/s of a vec4 copy kernel (bytes read + bytes written per second)."""
    dev = device.device
    limit = min(
        device.limits.get("max-storage-buffer-binding-size", 128 << 20),
        device.limits.get("max-buffer-size", 256 << 20),
        max_mib << 20,
    )
    size = 4 << 20
    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
    while True:
        n = size // 16
        groups = math.ceil(n / _WG)
        gx, gy, _ = grid = _grid(groups)
        src = dev.create_buffer_with_data(data=np.ones(n * 4, np.float32).tobytes(), usage=usage)
        dst = dev.create_buffer(size=size, usage=usage)
        pipe = device.pipeline(_source(gx * _WG, n), "ceilings/copy", "copy")
        group = dev.create_bind_group(
            layout=pipe.get_bind_group_layout(0),
            entries=[
                {"binding": 0, "resource": {"buffer": src, "offset": 0, "size": size}},
                {"binding": 1, "resource": {"buffer": dst, "offset": 0, "size": size}},
            ],
        )
        t = time_dispatch(device, pipe, group, grid, dst, repeats)
        src.destroy()
        dst.destroy()
        if t * 1000 >= target_ms or size * 2 > limit:
            return {"gbps": 2 * size / t / 1e9, "bytes": 2 * size, "ms": t * 1000}
        size *= 2


def measure(device: Device | None = None, *, quick: bool = False) -> dict:
    """{"kind": "ceilings", "device", "gflops", "gbps", ...}; cached per device."""
    device = device or get_device()
    key = id(device)
    if key not in _cache or (not quick and _cache[key].get("quick")):
        target = 5.0 if quick else 20.0
        peak = compute_peak(device, target_ms=target)
        bw = bandwidth(device, target_ms=target / 2)
        _cache[key] = {
            "kind": "ceilings",
            "device": device.name,
            "gflops": peak["gflops"],
            "gbps": bw["gbps"],
            "ridge_flop_per_byte": peak["gflops"] / bw["gbps"],
            "compute": peak,
            "copy": bw,
            "quick": quick,
        }
    return dict(_cache[key])

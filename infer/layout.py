"""The one physical layout every GPU tensor uses: channels last, channels padded to 4.

A logical tensor (d0, d1, d2, ..., dk) of rank >= 2 is stored as (d0, d2, ..., dk, pad4(d1)):
the channel axis is innermost and padded to a multiple of 4, so a pixel's channels are vec4
loads (what conv kernels want, like ncnn's pack4 and Anime4K's RGBA texels), and a band of
rows is one contiguous range. Padding lanes are always written as zero by every kernel.
Rank 0 and 1 tensors are stored as they are.
"""

from __future__ import annotations

import math

import numpy as np

STORAGE = {"fp32": ("f32", np.float32), "fp16": ("f16", np.float16)}


def storage(precision: str) -> tuple[str, type]:
    """(WGSL scalar type, numpy dtype) tensors are stored in at this precision."""
    return STORAGE[precision]


def element_size(precision: str) -> int:
    """Bytes of one stored tensor element at this precision."""
    return np.dtype(STORAGE[precision][1]).itemsize


def pad4(c: int) -> int:
    return (c + 3) // 4 * 4


def physical_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) < 2:
        return tuple(shape)
    return (shape[0], *shape[2:], pad4(shape[1]))


def physical_size(shape: tuple[int, ...]) -> int:
    return math.prod(physical_shape(shape))


def buffer_bytes(shape: tuple[int, ...], esize: int = 4) -> int:
    """Bytes of a tensor's GPU buffer: its physical size, at least 16 (WGSL's smallest
    binding a vec4 load may touch)."""
    return max(16, physical_size(shape) * esize)


def logical_strides(shape: tuple[int, ...]) -> list[int]:
    """Stride in f32 elements of each logical axis within the physical buffer."""
    if len(shape) < 2:
        return [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    phys = physical_shape(shape)
    pstr = [math.prod(phys[i + 1 :]) for i in range(len(phys))]
    return [pstr[0], 1, *pstr[1:-1]]


def to_physical(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim < 2:
        return np.ascontiguousarray(arr)
    moved = np.moveaxis(arr, 1, -1)
    c = arr.shape[1]
    if pad4(c) != c:
        widths = [(0, 0)] * (moved.ndim - 1) + [(0, pad4(c) - c)]
        moved = np.pad(moved, widths)
    return np.ascontiguousarray(moved)


def from_physical(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    shape = tuple(shape)
    data = np.asarray(flat, dtype=np.float32)[: physical_size(shape)].reshape(physical_shape(shape))
    if len(shape) < 2:
        return data.copy()
    return np.ascontiguousarray(np.moveaxis(data[..., : shape[1]], -1, 1))

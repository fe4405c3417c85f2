"""How a GPU tensor lies in its buffer: the image layout, or plain row-major.

`IMAGE` (every image tensor, every graph input and output): a logical tensor (d0, d1, d2, ...,
dk) of rank >= 2 is stored as (d0, d2, ..., dk, pad4(d1)): the channel axis is innermost and
padded to a multiple of 4, so a pixel's channels are vec4 loads (what conv kernels want, like
ncnn's pack4 and Anime4K's RGBA texels), and a band of rows is one contiguous range. Padding
lanes are always written as zero by every kernel.

`ROWS`: plain row-major, unpadded, for tensors that are not images: the token sequences
(B, N, C) of window attention, the (B, heads, N, d) heads, scores, reshaped windows. For them
axis 1 is a token or head index, not a channel: the image layout would make the token axis
innermost and pad it (or the head axis: 2 heads padded to 4 doubled the scores tensor), put
the reduced axis of LayerNorm, Softmax and MatMul (the last) at a large stride, and turn every
view (window partition, head split) into a copy kernel. Row-major keeps the last axis
contiguous and makes a Reshape of a row-major tensor free (an alias of the same buffer).
Which tensors get which layout is decided per specialisation by `passes.layouts`.

Rank 0 and 1 tensors are the same in both layouts. Row-major buffers are rounded up to a whole
number of vec4s, so the 4-wide elementwise kernels run over them too (the tail is never read
as data).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

Layout = Literal["image", "rows"]
IMAGE: Layout = "image"
ROWS: Layout = "rows"

STORAGE = {"fp32": ("f32", np.float32), "fp16": ("f16", np.float16)}


def storage(precision: str) -> tuple[str, type]:
    """(WGSL scalar type, numpy dtype) tensors are stored in at this precision."""
    return STORAGE[precision]


def element_size(precision: str) -> int:
    """Bytes of one stored tensor element at this precision."""
    return np.dtype(STORAGE[precision][1]).itemsize


def pad4(c: int) -> int:
    return (c + 3) // 4 * 4


def is_image(shape: tuple[int, ...], layout: Layout = IMAGE) -> bool:
    """Whether the tensor is stored channels-last padded (rank >= 2 in the image layout)."""
    return layout == IMAGE and len(shape) >= 2


def physical_shape(shape: tuple[int, ...], layout: Layout = IMAGE) -> tuple[int, ...]:
    if not is_image(shape, layout):
        return tuple(shape)
    return (shape[0], *shape[2:], pad4(shape[1]))


def physical_size(shape: tuple[int, ...], layout: Layout = IMAGE) -> int:
    return math.prod(physical_shape(shape, layout))


def vec4_count(shape: tuple[int, ...], layout: Layout = IMAGE) -> int:
    """vec4s that cover the tensor's buffer (row-major buffers are rounded up to whole vec4s)."""
    return -(-physical_size(shape, layout) // 4)


def buffer_bytes(shape: tuple[int, ...], esize: int = 4, layout: Layout = IMAGE) -> int:
    """Bytes of a tensor's GPU buffer: its physical size rounded up to whole vec4s, at least 16
    (WGSL's smallest binding a vec4 load may touch)."""
    return max(16, vec4_count(shape, layout) * 4 * esize)


def rowmajor_strides(shape: tuple[int, ...] | list[int]) -> list[int]:
    return [math.prod(shape[k + 1 :]) for k in range(len(shape))]


def logical_strides(shape: tuple[int, ...], layout: Layout = IMAGE) -> list[int]:
    """Stride in elements of each logical axis within the physical buffer."""
    if not is_image(shape, layout):
        return rowmajor_strides(shape)
    phys = physical_shape(shape, layout)
    pstr = rowmajor_strides(phys)
    return [pstr[0], 1, *pstr[1:-1]]


def to_physical(arr: np.ndarray, layout: Layout = IMAGE) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float32)
    if not is_image(arr.shape, layout):
        return np.ascontiguousarray(arr)
    moved = np.moveaxis(arr, 1, -1)
    c = arr.shape[1]
    if pad4(c) != c:
        widths = [(0, 0)] * (moved.ndim - 1) + [(0, pad4(c) - c)]
        moved = np.pad(moved, widths)
    return np.ascontiguousarray(moved)


def from_physical(flat: np.ndarray, shape: tuple[int, ...], layout: Layout = IMAGE) -> np.ndarray:
    shape = tuple(shape)
    size = physical_size(shape, layout)
    data = np.asarray(flat, dtype=np.float32)[:size].reshape(physical_shape(shape, layout))
    if not is_image(shape, layout):
        return data.copy()
    return np.ascontiguousarray(np.moveaxis(data[..., : shape[1]], -1, 1))

"""Helpers shared by op builders: index decoding tables and dispatch grids."""

from __future__ import annotations

import math

import numpy as np

from ..layout import logical_strides, pad4, physical_shape, physical_size
from .registry import NotSupported

WORKGROUP = 64
MAX_GROUPS = 65535


def grid_for(invocations: int, workgroup: int = WORKGROUP) -> tuple[tuple[int, int, int], int]:
    """A 2-D grid covering `invocations` (dispatch dimensions are capped at 65535).

    Returns the grid and the row pitch in invocations, so a shader computes its linear index
    as gid.x + gid.y * pitch.
    """
    groups = max(1, math.ceil(invocations / workgroup))
    gx = min(groups, MAX_GROUPS)
    gy = math.ceil(groups / gx)
    return (gx, gy, 1), gx * workgroup


def index_vars(shape: tuple[int, ...], prefix: str = "") -> dict:
    """Template variables for decoding a physical f32 index into logical coordinates.

    Logical coordinate k is (i / div[k]) % mod[k]; for rank >= 2 a channel coordinate at or
    beyond `channels` is a padding lane, which kernels must write as zero.
    """
    rank = len(shape)
    if rank >= 2:
        phys = physical_shape(shape)
        pstr = [math.prod(phys[i + 1 :]) for i in range(len(phys))]
        div = [pstr[0], 1, *pstr[1:-1]]
        mod = [shape[0], pad4(shape[1]), *shape[2:]]
        channels = shape[1] if pad4(shape[1]) != shape[1] else None
    else:
        div = [math.prod(shape[i + 1 :]) for i in range(rank)]
        mod = list(shape)
        channels = None
    return {
        f"{prefix}rank": rank,
        f"{prefix}div": div,
        f"{prefix}mod": mod,
        f"{prefix}channels": channels,
        f"{prefix}total": physical_size(shape),
        f"{prefix}strides": logical_strides(shape),
        f"{prefix}shape": list(shape),
    }


def broadcast_strides(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """Physical strides of `in_shape` seen through numpy broadcasting to `out_shape`."""
    lst = logical_strides(in_shape)
    pad = len(out_shape) - len(in_shape)
    out = [0] * len(out_shape)
    for k, (d, s) in enumerate(zip(in_shape, lst, strict=True)):
        out[pad + k] = 0 if d == 1 else s
    return out


def broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError as e:
        raise NotSupported(f"shapes {list(shapes)} do not broadcast") from e


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise NotSupported(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0

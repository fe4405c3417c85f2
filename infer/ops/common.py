"""Helpers shared by op builders: index decoding tables and dispatch grids."""

from __future__ import annotations

import math

import numpy as np

from ..layout import IMAGE, Layout, is_image, logical_strides, pad4, physical_shape, physical_size
from .registry import Binding, BuildContext, Dispatch, NotSupported

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


def index_vars(shape: tuple[int, ...], prefix: str = "", layout: Layout = IMAGE) -> dict:
    """Template variables for decoding a physical element index into logical coordinates.

    Logical coordinate k is (i / div[k]) % mod[k]; in the image layout a channel coordinate at
    or beyond `channels` is a padding lane, which kernels must write as zero.
    """
    rank = len(shape)
    if is_image(shape, layout):
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
        f"{prefix}total": physical_size(shape, layout),
        f"{prefix}strides": logical_strides(shape, layout),
        f"{prefix}shape": list(shape),
    }


def broadcast_strides(
    in_shape: tuple[int, ...], out_shape: tuple[int, ...], layout: Layout = IMAGE
) -> list[int]:
    """Physical strides of `in_shape` seen through numpy broadcasting to `out_shape`."""
    lst = logical_strides(in_shape, layout)
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


def pad_lanes_dispatch(
    y: str, shape: tuple[int, ...], layout: Layout, label: str
) -> list[Dispatch]:
    """A dispatch that writes zero into the channel padding lanes of an image-layout tensor
    whose kernel writes only logical elements (the row kernels: LayerNorm, Softmax, MatMul,
    attention); none when there are no padding lanes."""
    if not is_image(shape, layout) or shape[1] % 4 == 0:
        return []
    c, p = shape[1], pad4(shape[1])
    total = physical_size(shape, layout) // p * (p - c)
    if total == 0:
        return []
    grid, pitch = grid_for(total)
    variables = {"total": total, "pitch": pitch, "c": c, "p": p}
    return [Dispatch("zero_lanes.wgsl", variables, [Binding("out", y)], grid, f"{label}/pad")]


def row_plan(in_shape: tuple[int, ...], axes: list[int], strides: dict[str, list[int]]) -> dict:
    """How a row kernel walks a tensor: one row per combination of the kept axes, the reduced
    `axes` walked inside the row. `strides` maps each tensor the kernel touches to its
    element strides (at least for the kept axes, and for the reduced ones where it has
    them). Row and element coordinates are decoded row-major (k = (i / div) % n)."""
    kept = [a for a in range(len(in_shape)) if a not in axes]
    kdims = [in_shape[a] for a in kept]
    rdims = [in_shape[a] for a in axes]

    def table(ax: list[int], dims: list[int]) -> list[dict]:
        out = []
        for j, a in enumerate(ax):
            if dims[j] == 1:
                continue
            entry = {"n": dims[j], "div": math.prod(dims[j + 1 :])}
            for name, st in strides.items():
                entry[name] = st[a] if a < len(st) else 0
            out.append(entry)
        return out

    return {
        "rows": math.prod(kdims),
        "extent": math.prod(rdims),
        "kept": table(kept, kdims),
        "red": table(axes, rdims),
        "names": list(strides),
    }


# Kernels that decode an element index into coordinates (the copies: depth-to-space, a
# concat; resize) divide by the sizes; read from a uniform, those are integer divisions that
# lavapipe makes lane by lane. Measured against the sizes baked in, alternated in one run
# (process CPU time per frame, best of 20): the bundled upscaler +9% at 160x90 and +14% at
# 320x180 (d2s and resize), where a new size costs compiling these two small kernels
# (about 1.5 s on lavapipe, against ~60 s for the convs that read sizes from uniforms).
# So they keep the sizes baked in: True reads them at run time (one kernel for every size).
DECODE_AT_RUN_TIME = False


class Sizes:
    """Values that change with the input's size, passed to a kernel in a uniform block (`sz`)
    rather than written into its code: the kernel's WGSL is then the same at every size, so
    one compiled pipeline serves a stream whose frame size adapts (a new size is otherwise
    new machine code: seconds per kernel on lavapipe). Each value gets the next slot, so a
    builder must ask for them in the same order at every size; a template renders a slot
    with the `u`, `i` and `f32` filters (infer.wgsl), which also take plain numbers."""

    def __init__(self) -> None:
        self.values: list[int] = []

    def __call__(self, value: int) -> str:
        """The u32 WGSL expression reading `value`'s slot."""
        j = len(self.values)
        self.values.append(int(value))
        return f"sz[{j // 4}][{j % 4}]"

    def table(self, shape: tuple[int, ...], prefix: str = "", layout: Layout = IMAGE) -> dict:
        """index_vars with every entry that depends on the spatial size (found by comparing
        with the shape one larger in each spatial axis) read from a slot."""
        base = index_vars(shape, prefix, layout)
        probe = index_vars((*shape[:2], *(d + 1 for d in shape[2:])), prefix, layout)
        out = dict(base)
        for key in ("div", "mod", "strides"):
            k = f"{prefix}{key}"
            out[k] = self.varying(base[k], probe[k])
        out[f"{prefix}total"] = self(base[f"{prefix}total"])
        return out

    def strides(self, shape: tuple[int, ...], layout: Layout = IMAGE) -> list[int | str]:
        """logical_strides with those that depend on the spatial size read from slots."""
        probe = (*shape[:2], *(d + 1 for d in shape[2:]))
        return self.varying(logical_strides(shape, layout), logical_strides(probe, layout))

    def varying(self, base: list[int], probe: list[int]) -> list[int | str]:
        """`base`'s values, each one that differs from `probe`'s (the same table at another
        size) read from a slot."""
        return [self(v) if v != p else v for v, p in zip(base, probe, strict=True)]

    @property
    def vec4s(self) -> int:
        """Length of the block in vec4<u32> (0: no sizes)."""
        return (len(self.values) + 3) // 4

    def binding(self, ctx: BuildContext, key: str) -> list[Binding]:
        """The block as a uniform binding (none when empty): bind it at the template's
        `sizes_binding`."""
        if not self.values:
            return []
        arr = np.zeros(self.vec4s * 4, np.uint32)
        arr[: len(self.values)] = self.values
        return [Binding("const", ctx.add_const(key, arr), uniform=True)]

"""DepthToSpace and SpaceToDepth: channels to pixel blocks and back (pixel shuffle / unshuffle).

Copies on the GPU (shape.wgsl) through an affine map of the input's logical strides.
"""

from __future__ import annotations

import numpy as np

from ..graph import Node
from ..layout import logical_strides
from .common import DECODE_AT_RUN_TIME, Sizes
from .registry import BuildContext, Dispatch, NotSupported, Value, register
from .shape import check_not_empty, copy_dispatch, data_binding, require_float

# ---- DepthToSpace / SpaceToDepth ---------------------------------------------------------


def _blocksize(node: Node) -> int:
    b = int(node.attr("blocksize", 0))
    if b < 1:
        raise NotSupported(f"blocksize {b}")
    return b


def _d2s_mode(node: Node) -> str:
    mode = node.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise NotSupported(f"mode {mode!r}")
    return mode


def _d2s_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins)
    shape, b = ins[0].shape, _blocksize(node)
    _d2s_mode(node)
    if len(shape) != 4 or shape[1] % (b * b):
        raise NotSupported(f"input {list(shape)} with blocksize {b}")
    n, c, h, w = shape
    return [(n, c // (b * b), h * b, w * b)]


def _d2s_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x, b = a[0], _blocksize(node)
    n, c, h, w = x.shape
    oc = c // (b * b)
    if _d2s_mode(node) == "DCR":
        t = x.reshape(n, b, b, oc, h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        t = x.reshape(n, oc, b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [np.ascontiguousarray(t.reshape(n, oc, h * b, w * b))]


def _s2d_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    require_float(node, ins)
    shape, b = ins[0].shape, _blocksize(node)
    _d2s_mode(node)
    if len(shape) != 4 or shape[2] % b or shape[3] % b:
        raise NotSupported(f"input {list(shape)} with blocksize {b}")
    n, c, h, w = shape
    return [(n, c * b * b, h // b, w // b)]


def _s2d_eval(node: Node, a: list, opset: int) -> list[np.ndarray]:
    x, b = a[0], _blocksize(node)
    n, c, h, w = x.shape
    perm = (0, 3, 5, 1, 2, 4) if _d2s_mode(node) == "DCR" else (0, 1, 3, 5, 2, 4)
    t = x.reshape(n, c, h // b, b, w // b, b).transpose(*perm)
    return [np.ascontiguousarray(t.reshape(n, c * b * b, h // b, w // b))]


def _block_build(node: Node, ctx: BuildContext) -> list[Dispatch]:
    x = node.inputs[0]
    in_shape = ctx.shape(x)
    check_not_empty(node, in_shape)
    b = _blocksize(node)
    if node.op_type == "DepthToSpace":
        kind = "d2s"
        mode = _d2s_mode(node)
        channels = ctx.shape(node.outputs[0])[1]
    else:
        kind, mode, channels = "s2d", _d2s_mode(node), in_shape[1]
    # the frame's size read at run time (one kernel for every size) where that pays
    sizes = Sizes() if DECODE_AT_RUN_TIME else None
    variables = {
        "kind": kind,
        "mode": mode,
        "block": b,
        "channels_small": channels,
        "in_strides": logical_strides(in_shape) if sizes is None else sizes.strides(in_shape),
    }
    return [copy_dispatch(node, ctx, variables, [data_binding(ctx, node, x)], sizes=sizes)]


register("DepthToSpace", infer=_d2s_infer, evaluate=_d2s_eval, build=_block_build)
register("SpaceToDepth", infer=_s2d_infer, evaluate=_s2d_eval, build=_block_build)

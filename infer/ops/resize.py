"""Resize (opset 10, 11, 13, 18, 19) and Upsample (opset 7, 9).

One output element per invocation. The shader maps each resized axis' output coordinate to
the input (coordinate_transformation_mode) from per-axis constants, and interpolates
separably over the resized axes: 1 tap per axis for nearest, 2 for linear, 4 for cubic. Axes
that are not resized are copied through. Nothing is tabulated per pixel on the CPU.

Semantics follow onnxruntime: Upsample and opset-10 Resize use asymmetric coordinates and
its "simple" nearest rounding (truncate when upscaling, ceil when downscaling).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..graph import Node
from ..layout import logical_strides
from .common import DECODE_AT_RUN_TIME, Sizes, grid_for, index_vars
from .registry import Binding, BuildContext, BuildFn, Dispatch, NotSupported, Value, register

TEMPLATE = "resize.wgsl"
MAX_TAPS = 64  # product of taps over the resized axes, per output element

MODES = {"nearest": "nearest", "linear": "linear", "bilinear": "linear", "cubic": "cubic"}
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
TRANSFORMS = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nearest",
    "tf_crop_and_resize",
)
# Transforms under which an axis of unchanged size and scale 1 maps x to x exactly.
_IDENTITY_SAFE = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "asymmetric",
    "align_corners",
)


def _floats(a: np.ndarray | None) -> list[float] | None:
    if a is None:
        return None
    flat = np.asarray(a).reshape(-1)
    return None if flat.size == 0 else [float(v) for v in flat.astype(np.float32)]


def _ints(a: np.ndarray | None) -> list[int] | None:
    if a is None:
        return None
    flat = np.asarray(a).reshape(-1)
    return None if flat.size == 0 else [int(v) for v in flat]


def resize_params(
    node: Node, x_shape: tuple[int, ...], const: Callable[[int], np.ndarray | None], opset: int
) -> dict[str, Any]:
    """Output shape and per-axis mapping of a Resize / Upsample node; const(k) -> input k."""
    rank = len(x_shape)
    mode = MODES.get(str(node.attr("mode", "nearest")).lower())
    if mode is None:
        raise NotSupported(f"{node.op_type} mode {node.attr('mode')!r}")
    roi = None
    sizes = None
    axes = list(range(rank))
    policy = "stretch"
    if node.op_type == "Upsample":
        if opset < 9:
            scales = [float(np.float32(s)) for s in node.attr("scales", [])] or None
        else:
            scales = _floats(const(1))
        if mode == "cubic":
            raise NotSupported("Upsample mode cubic")
        ctm, nearest_mode = "asymmetric", "simple"
    elif opset < 11:
        scales = _floats(const(1))
        if mode == "cubic":
            raise NotSupported("Resize-10 mode cubic")
        ctm, nearest_mode = "asymmetric", "simple"
    else:
        roi = _floats(const(1))
        scales = _floats(const(2))
        sizes = _ints(const(3))
        ctm = node.attr("coordinate_transformation_mode", "half_pixel")
        nearest_mode = node.attr("nearest_mode", "round_prefer_floor")
        if opset >= 18:
            axes = [int(a) % rank for a in node.attr("axes", None) or range(rank)]
            policy = node.attr("keep_aspect_ratio_policy", "stretch")
    if ctm not in TRANSFORMS:
        raise NotSupported(f"coordinate_transformation_mode {ctm!r}")
    if nearest_mode not in (*NEAREST_MODES, "simple"):
        raise NotSupported(f"nearest_mode {nearest_mode!r}")
    if len(set(axes)) != len(axes):
        raise NotSupported(f"repeated axes {axes}")
    if scales is not None and sizes is not None:
        raise NotSupported("both scales and sizes given")
    given = scales if scales is not None else sizes
    if given is None:
        raise NotSupported(f"{node.op_type} needs constant scales or sizes")
    if len(given) != len(axes):
        raise NotSupported(f"{len(given)} scales/sizes for {len(axes)} axes")
    out = list(x_shape)
    scale = [1.0] * rank
    if scales is not None:
        for a, s in zip(axes, scales, strict=True):
            if s <= 0:
                raise NotSupported(f"scale {s} <= 0")
            out[a] = int(math.floor(np.float32(s) * np.float32(x_shape[a])))
            scale[a] = s
    elif policy == "stretch":
        for a, n in zip(axes, given, strict=True):
            out[a] = int(n)
            scale[a] = float(np.float32(n) / np.float32(x_shape[a]))
    elif policy in ("not_larger", "not_smaller"):
        ratios = [np.float32(n) / np.float32(x_shape[a]) for a, n in zip(axes, given, strict=True)]
        s = float(min(ratios) if policy == "not_larger" else max(ratios))
        for a in axes:
            out[a] = int(math.floor(s * x_shape[a] + 0.5))
            scale[a] = s
    else:
        raise NotSupported(f"keep_aspect_ratio_policy {policy!r}")
    if any(d <= 0 for d in out):
        raise NotSupported(f"empty Resize output {out}")
    full_roi = [0.0] * rank + [1.0] * rank
    if ctm == "tf_crop_and_resize":
        if roi is None or len(roi) != 2 * len(axes):
            raise NotSupported("tf_crop_and_resize needs a constant roi for every axis")
        for j, a in enumerate(axes):
            full_roi[a], full_roi[a + rank] = roi[j], roi[j + len(axes)]
    antialias = int(node.attr("antialias", 0))
    if antialias and mode != "nearest" and any(s < 1 for s in scale):
        raise NotSupported("antialiased downscaling (a wider resampling filter) is not implemented")
    resized = []
    for a in range(rank):
        same = out[a] == x_shape[a] and scale[a] == 1.0
        if ctm == "tf_crop_and_resize":
            identity = same and (full_roi[a], full_roi[a + rank]) == (0.0, 1.0)
        elif ctm == "tf_half_pixel_for_nearest":  # x + 0.5: rounds back to x only downwards
            identity = same and mode == "nearest" and nearest_mode in NEAREST_MODES[::2]
        else:
            identity = same and ctm in _IDENTITY_SAFE
        if not identity:
            resized.append(a)
    taps = {"nearest": 1, "linear": 2, "cubic": 4}[mode] ** len(resized)
    if taps > MAX_TAPS:
        raise NotSupported(f"{mode} Resize over {len(resized)} axes ({taps} taps per output)")
    return {
        "mode": mode,
        "ctm": ctm,
        "nearest_mode": nearest_mode,
        "cubic_a": float(node.attr("cubic_coeff_a", -0.75)),
        "exclude_outside": bool(int(node.attr("exclude_outside", 0))),
        "extrapolation": float(node.attr("extrapolation_value", 0.0)),
        "out": out,
        "scale": scale,
        "roi": full_roi,
        "resized": resized,
    }


# ---- numpy (constant folding) ------------------------------------------------------------


def _source_coord(p: dict, a: int, in_len: int, out_len: int) -> np.ndarray:
    f = np.arange(out_len, dtype=np.float32)
    s = np.float32(p["scale"][a])
    ctm = p["ctm"]
    half = np.float32(0.5)
    if ctm == "half_pixel":
        return (f + half) / s - half
    if ctm == "half_pixel_symmetric":
        adj = np.float32(out_len) / (s * np.float32(in_len))
        offset = np.float32(in_len) / 2 * (1 - adj)
        return offset + (f + half) / s - half
    if ctm == "pytorch_half_pixel":
        return (f + half) / s - half if out_len > 1 else np.zeros_like(f)
    if ctm == "align_corners":
        return f * np.float32(in_len - 1) / np.float32(out_len - 1) if out_len > 1 else f * 0
    if ctm == "asymmetric":
        return f / s
    if ctm == "tf_half_pixel_for_nearest":
        return (f + half) / s
    rank = len(p["roi"]) // 2
    lo, hi = np.float32(p["roi"][a]), np.float32(p["roi"][a + rank])
    if out_len > 1:
        return lo * (in_len - 1) + f * (hi - lo) * np.float32(in_len - 1) / np.float32(out_len - 1)
    return np.full_like(f, 0.5 * (lo + hi) * (in_len - 1))


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    u = [t + 1, t, 1 - t, 2 - t]
    w0 = ((a * u[0] - 5 * a) * u[0] + 8 * a) * u[0] - 4 * a
    w1 = ((a + 2) * u[1] - (a + 3)) * u[1] * u[1] + 1
    w2 = ((a + 2) * u[2] - (a + 3)) * u[2] * u[2] + 1
    w3 = ((a * u[3] - 5 * a) * u[3] + 8 * a) * u[3] - 4 * a
    return np.stack([w0, w1, w2, w3], axis=1)


def _axis_taps(
    p: dict[str, Any], a: int, in_len: int, out_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices [out, taps], weights [out, taps], outside mask [out]) of one resized axis."""
    xo = _source_coord(p, a, in_len, out_len).astype(np.float64)
    outside = (xo < 0) | (xo > in_len - 1)
    mode = p["mode"]
    if mode == "nearest":
        nm = p["nearest_mode"]
        if nm == "round_prefer_floor":
            idx = np.ceil(xo - 0.5)
        elif nm == "round_prefer_ceil":
            idx = np.floor(xo + 0.5)
        elif nm == "floor":
            idx = np.floor(xo)
        elif nm == "ceil":
            idx = np.ceil(xo)
        else:
            idx = np.ceil(xo) if p["scale"][a] < 1 else np.trunc(xo)
        idx = np.clip(idx, 0, in_len - 1).astype(np.int64)[:, None]
        return idx, np.ones_like(idx, np.float64), outside
    if mode == "linear":
        c = np.clip(xo, 0, in_len - 1)
        i0 = np.minimum(np.floor(c), in_len - 1).astype(np.int64)
        i1 = np.minimum(i0 + 1, in_len - 1)
        t = c - i0
        return np.stack([i0, i1], 1), np.stack([1 - t, t], 1), outside
    fl = np.floor(xo)
    w = _cubic_weights(xo - fl, p["cubic_a"])
    idx = fl.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
    if p["exclude_outside"]:
        w = np.where((idx >= 0) & (idx < in_len), w, 0)
        w = w / w.sum(axis=1, keepdims=True)
    return np.clip(idx, 0, in_len - 1), w, outside


def _resize_eval(node: Node, arrays: list, opset: int) -> list[np.ndarray]:
    x = arrays[0]
    p = resize_params(node, x.shape, lambda k: arrays[k] if k < len(arrays) else None, opset)
    y = x.astype(np.float64)
    mask = np.zeros(p["out"], bool)
    for a in p["resized"]:
        idx, w, outside = _axis_taps(p, a, x.shape[a], p["out"][a])
        shape = [1] * x.ndim
        shape[a] = -1
        acc = 0
        for j in range(idx.shape[1]):
            acc = acc + np.take(y, idx[:, j], axis=a) * w[:, j].reshape(shape)
        y = acc
        if p["ctm"] == "tf_crop_and_resize":
            mask |= outside.reshape(shape)
    if p["ctm"] == "tf_crop_and_resize":
        y = np.where(mask, p["extrapolation"], y)
    return [y.astype(x.dtype)]


# ---- GPU -------------------------------------------------------------------------------


def _resize_infer(node: Node, ins: list[Value], opset: int) -> list[tuple[int, ...]]:
    x = ins[0]
    if np.dtype(x.dtype).kind != "f":
        raise NotSupported(f"{node.op_type} on a {np.dtype(x.dtype).name} tensor")
    p = resize_params(node, x.shape, lambda k: ins[k].const if k < len(ins) else None, opset)
    return [tuple(p["out"])]


def _resize_build(node: Node, ctx: BuildContext, opset: int) -> list[Dispatch]:
    x, y = node.inputs[0], node.outputs[0]
    x_shape = ctx.shape(x)
    inputs = node.inputs
    p = resize_params(
        node, x_shape, lambda k: ctx.const(inputs[k]) if k < len(inputs) else None, opset
    )
    rank = len(x_shape)
    xs = logical_strides(x_shape)
    # the sizes and scales read at run time where that pays (ops.common.DECODE_AT_RUN_TIME),
    # never where the source coordinate's formula mixes them at build time
    runtime = DECODE_AT_RUN_TIME and p["ctm"] not in ("tf_crop_and_resize", "half_pixel_symmetric")
    sizes = Sizes() if runtime else None
    axes = []
    for a in p["resized"]:
        ax = {
            "k": a,
            "n": x_shape[a],
            "m": p["out"][a],
            "nm1": x_shape[a] - 1,
            "mm1": p["out"][a] - 1,
            "stride": xs[a],
            "scale": p["scale"][a],
            "lo": p["roi"][a],
            "hi": p["roi"][a + rank],
            "down": p["scale"][a] < 1,
        }
        if sizes is not None:
            bits = int(np.array(p["scale"][a], np.float32).view(np.uint32))
            ax |= {k: sizes(ax[k]) for k in ("n", "nm1", "mm1", "stride")}
            ax["scale"] = f"bitcast<f32>({sizes(bits)})"
        axes.append(ax)
    out = index_vars(tuple(p["out"]))
    grid, pitch_n = grid_for(out["total"])
    pitch: int | str = pitch_n
    copy: list[tuple[int, int | str]] = [(a, xs[a]) for a in range(rank) if a not in p["resized"]]
    extra: list[Binding] = []
    if sizes is not None:
        out = sizes.table(tuple(p["out"]))
        copy = [(a, sizes(xs[a])) for a, _ in copy]  # the same axes, their strides read
        pitch = sizes(pitch_n)
        extra = sizes.binding(ctx, f"{node.name}/sizes")
    variables = {
        "sizes": 0 if sizes is None else sizes.vec4s,
        "out": out,
        "pitch": pitch,
        "mode": p["mode"],
        "ctm": p["ctm"],
        "nearest_mode": p["nearest_mode"],
        "cubic_a": p["cubic_a"],
        "exclude_outside": p["exclude_outside"],
        "extrapolation": p["extrapolation"],
        "axes": axes,
        "copy": copy,
    }
    bindings = [Binding("in", x), Binding("out", y), *extra]
    return [Dispatch(TEMPLATE, variables, bindings, grid, node.name)]


def _register() -> None:
    for since, consts in (
        (10, (1,)),
        (11, (1, 2, 3)),
        (13, (1, 2, 3)),
        (18, (1, 2, 3)),
        (19, (1, 2, 3)),
    ):
        register(
            "Resize",
            since=since,
            infer=_resize_infer,
            evaluate=_resize_eval,
            build=_with_opset(since),
            const_inputs=consts,
        )
    register("Upsample", since=7, infer=_resize_infer, evaluate=_resize_eval, build=_with_opset(7))
    register(
        "Upsample",
        since=9,
        infer=_resize_infer,
        evaluate=_resize_eval,
        build=_with_opset(9),
        const_inputs=(1,),
    )


def _with_opset(since: int) -> BuildFn:
    """Builders do not receive the model's opset: the registered version's `since` is enough
    to pick the semantics (10: Resize-10, 11+: roi/scales/sizes, 18+: axes)."""

    def build(node: Node, ctx: BuildContext) -> list[Dispatch]:
        return _resize_build(node, ctx, since)

    return build


_register()

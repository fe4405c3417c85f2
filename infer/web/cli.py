"""`python -m infer export-web MODEL DIR`: a browser bundle of a model (infer.web.export)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..bundled import resolve_model
from ..errors import ModelError
from ..graph import from_onnx, load_proto
from .export import Target, export_webgpu


def size_arg(text: str) -> tuple[int, int]:
    """argparse's type for WxH (also `python -m infer`'s other --size options)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x360, not {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, not {text!r}")
    return w, h


def add_parser(sub: Any) -> Callable[[argparse.Namespace], int]:
    """Register the subcommand on `python -m infer`'s subparsers; returns its handler."""
    e = sub.add_parser(
        "export-web",
        help="write a browser bundle (ES module, WGSL, plan, weights) for WebGPU",
        description="Compile MODEL for a browser's WebGPU at the given input size(s), with no "
        "GPU here, and write DIR/index.js, DIR/runtime.js, DIR/manifest.json, "
        "DIR/kernels/*.wgsl and DIR/weights.bin. In a page: "
        "`const m = await (await import('DIR/index.js')).load('DIR/'); "
        "const {data, shape} = await m.run(float32Array, [1, 3, h, w]);`. "
        "A bundle runs only the input sizes it was exported for.",
    )
    e.add_argument("model", help="ONNX file, or the name of a bundled model (upscale.onnx)")
    e.add_argument("dir", help="output folder (created)")
    e.add_argument(
        "--size",
        type=size_arg,
        action="append",
        help="input WxH, repeatable (default: the model's declared size when it has one)",
    )
    e.add_argument("--batch", type=int, default=1)
    e.add_argument(
        "--channels", type=int, default=None, help="input channels when the model leaves it open"
    )
    e.add_argument(
        "--subgroups",
        action="store_true",
        help="also a build with subgroup kernels (8+ lanes), taken where the device has them",
    )
    e.add_argument(
        "--kernels",
        default="",
        help="comma-separated conv variants to force where they apply (default: the rule)",
    )
    return cmd_export_web


def _shapes(args: argparse.Namespace) -> list[tuple[int, ...]]:
    graph = from_onnx(load_proto(resolve_model(args.model)))
    if len(graph.inputs) != 1 or graph.inputs[0].shape is None:
        raise ModelError("a browser bundle takes a model with one NCHW input")
    declared = graph.inputs[0].shape
    if len(declared) != 4:
        raise ModelError(f"input has rank {len(declared)}, not 4 (NCHW)")
    c = declared[1] if isinstance(declared[1], int) and declared[1] > 0 else args.channels
    if c is None:
        raise ModelError("the model leaves the input's channels open: give --channels")
    if not args.size:
        h, w = declared[2], declared[3]
        if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
            raise ModelError("the model's input size is dynamic: give --size WxH (repeatable)")
        return [(args.batch, c, h, w)]
    return [(args.batch, c, h, w) for w, h in dict.fromkeys(args.size)]


def cmd_export_web(args: argparse.Namespace) -> int:
    shapes = _shapes(args)
    targets = [Target.browser(subgroups=True), Target()] if args.subgroups else [Target()]
    kernels = [k for k in args.kernels.split(",") if k]
    path = resolve_model(args.model)
    bundle = export_webgpu(path, shapes, targets, kernels=kernels, name=Path(path).stem)
    out = bundle.write(args.dir)
    summary = {
        "dir": str(out),
        "model": bundle.manifest["model"],
        "shapes": [list(s) for s in shapes],
        "builds": [b["target"]["name"] for b in bundle.manifest["builds"]],
        "kernels": len(bundle.shaders),
        "weights_bytes": len(bundle.weights),
    }
    print(json.dumps(summary))
    return 0

"""`python -m infer check MODEL`: what a user asks of a file before using it. Does it load (and
if not, which op at which node, and why)? Does it match onnxruntime? What does a 1080p frame
cost, and which kernels would run? Everything but the parity run is worked out without the
GPU (a Program is plain data), so the 1080p figures cost no device time."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np

from ..bundled import resolve_model
from ..errors import ModelError, UnsupportedModelError

FULL_HD = (1920, 1080)


def _session(path: Any) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _feeds(model: Any, sess: Any, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Random inputs at `size` for every graph input, in the dtype the file declares (an fp16
    file takes float16)."""
    from .benchmark import input_shape

    rng = np.random.default_rng(0)
    types = {i.name: i.type for i in sess.get_inputs()} if sess is not None else {}
    feeds = {}
    for k, vi in enumerate(model.graph.inputs):
        shape = input_shape(model, size) if k == 0 else tuple(
            d if isinstance(d, int) and d > 0 else 1 for d in (vi.shape or (1,))
        )  # fmt: skip
        dtype = np.float16 if types.get(vi.name) == "tensor(float16)" else np.float32
        feeds[vi.name] = rng.random(shape).astype(dtype)
    return feeds


def _static_problems(graph: Any) -> list[tuple[str, str, str]]:
    from ..ops import lookup

    return [
        (n.op_type, n.name, "no such op in the engine")
        for n in graph.nodes
        if lookup(n.op_type, graph.opset, n.domain) is None
    ]


def _op_table(graph: Any, missing: set[str]) -> None:
    from ..ops import lookup

    print(f"{'op':<24}{'count':>6}  status")
    for op, c in sorted(Counter(n.op_type for n in graph.nodes).items()):
        opdef = lookup(op, graph.opset)
        status = "UNSUPPORTED" if op in missing or opdef is None else (
            "gpu" if opdef.build else "folded"
        )  # fmt: skip
        print(f"{op:<24}{c:>6}  {status}")


def _kernels(program: Any) -> None:
    """Which WGSL kernels (and variants) the program dispatches, and how many times."""
    uses = Counter(
        d.template.removesuffix(".wgsl") + (f" ({d.variant})" if d.variant else "")
        for d in program.dispatches
    )
    print("kernels: " + ", ".join(f"{k} x{n}" for k, n in uses.most_common()))


def print_kernel_choices(program: Any) -> None:
    """Each conv's kernel variant, how it was picked, and the measured times."""
    if not program.kernel_choices:
        return
    print(f"\n{'conv':<28}{'kernel':<16}{'how':<10}candidates (ms when measured)")
    for node, c in program.kernel_choices.items():
        cands = ", ".join(f"{k} {c.ms[k]:.2f}" if k in c.ms else k for k in c.candidates)
        print(f"{node[-27:]:<28}{c.kernel:<16}{c.how:<10}{cands}")


def _cost_1080p(model: Any, channels: int) -> None:
    name = model.inputs[0]
    w, h = FULL_HD
    try:
        program = model.program({name: (1, channels, h, w)}, measure=False)
    except ModelError as e:
        print(f"cost per 1080p frame: not computed ({str(e).splitlines()[0]})")
        return
    out = program.values[program.graph.outputs[0]].shape
    print(
        f"cost per 1080p frame ({w}x{h} in, {'x'.join(map(str, out[2:][::-1]))} out): "
        f"{program.flops / 1e9:.1f} GFLOP in {len(program.dispatches)} dispatches"
    )


def cmd_check(args: argparse.Namespace) -> int:
    import infer

    from ..graph import from_onnx, load_proto

    path = resolve_model(args.model)
    graph = from_onnx(load_proto(path))
    problems = _static_problems(graph)
    print(f"{path}  (opset {graph.opset}, {len(graph.nodes)} nodes)")
    _op_table(graph, {op for op, _, _ in problems})
    if problems:
        print(f"\ndoes not load: {UnsupportedModelError(problems, graph.opset)}")
        return 1
    sess = _session(path)
    try:
        model = infer.load(
            path, precision=args.precision, adapter=args.adapter, kernels=args.kernels
        )
        feeds = _feeds(model, sess, args.size)
        shapes = {k: v.shape for k, v in feeds.items()}
        program = model.program(shapes)
        ours = model.run(feeds if len(feeds) > 1 else next(iter(feeds.values())))
    except ModelError as e:  # UnsupportedModelError names every op, node and reason
        print(f"\ndoes not load: {e}")
        return 1
    fused = Counter(n.op_type for n in program.graph.nodes)
    print(
        f"\nloads: after folding and fusion {len(program.graph.nodes)} nodes, "
        f"{len(program.dispatches)} dispatches ({dict(fused)})"
    )
    _kernels(program)
    print_kernel_choices(program)
    _cost_1080p(model, next(iter(shapes.values()))[1])
    if sess is None:
        print("onnxruntime not installed: parity not checked")
        return 0
    refs = sess.run(None, feeds)
    outs = list(ours.values()) if isinstance(ours, dict) else [ours]
    err = 0.0
    for got, ref in zip(outs, refs, strict=False):
        ref = np.asarray(ref, np.float32)
        err = max(err, float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-6)))
    ok = err <= args.tolerance
    shape = next(iter(shapes.values()))
    print(
        f"parity vs onnxruntime at {shape}: max relative error {err:.2e} "
        f"({'OK' if ok else 'FAIL'}, tolerance {args.tolerance:.0e})"
    )
    return 0 if ok else 1

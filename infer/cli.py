"""`python -m infer run|check|bench|train`: the engine from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from .bundled import resolve_model
from .errors import ModelError, UnsupportedModelError

log = logging.getLogger("infer")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x360, not {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, not {text!r}")
    return w, h


def _input_shape(model, size: tuple[int, int]) -> tuple[int, ...]:  # noqa: ANN001
    vi = model.graph.inputs[0]
    dims = list(vi.shape or (1, 3, None, None))
    w, h = size
    fill = [1, 3, h, w]
    shape = [d if isinstance(d, int) and d > 0 else fill[min(k, 3)] for k, d in enumerate(dims)]
    if len(shape) == 4:
        shape[2], shape[3] = (
            (dims[2] if isinstance(dims[2], int) and dims[2] > 0 else h),
            (dims[3] if isinstance(dims[3], int) and dims[3] > 0 else w),
        )
    return tuple(shape)


def _ort_session(path: Path, providers: list[str] | None = None):  # noqa: ANN202
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])


def cmd_run(args: argparse.Namespace) -> int:
    import infer

    from .images import read_image, test_frame, write_image

    path = resolve_model(args.model)
    model = infer.load(path, precision=args.precision, adapter=args.adapter)
    channels = _input_shape(model, (64, 64))[1]
    if args.input:
        x = read_image(args.input, channels)
    else:
        x = test_frame()[:, :channels]
        log.info("no --input: using a generated %dx%d test frame", x.shape[3], x.shape[2])
    t0 = time.perf_counter()
    y = model.run(x)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    y = model.run(x)
    again = time.perf_counter() - t0
    y = y if isinstance(y, np.ndarray) else next(iter(y.values()))
    write_image(args.output, y)
    print(
        f"{path.name}: {x.shape[3]}x{x.shape[2]} -> {y.shape[3]}x{y.shape[2]} on "
        f"{model.device.name}; first run {first * 1000:.0f} ms (compiles), then "
        f"{again * 1000:.0f} ms; wrote {args.output}"
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import infer

    from .graph import from_onnx, load_proto
    from .ops import lookup

    path = resolve_model(args.model)
    graph = from_onnx(load_proto(path))
    counts = Counter(n.op_type for n in graph.nodes)
    unsupported = {
        n.op_type for n in graph.nodes if lookup(n.op_type, graph.opset, n.domain) is None
    }
    print(f"{path}  (opset {graph.opset}, {len(graph.nodes)} nodes)")
    print(f"{'op':<24}{'count':>6}  status")
    for op, c in sorted(counts.items()):
        opdef = lookup(op, graph.opset)
        status = "UNSUPPORTED" if op in unsupported else ("gpu" if opdef.build else "folded")
        print(f"{op:<24}{c:>6}  {status}")
    if unsupported:
        print(f"\nunsupported op types: {', '.join(sorted(unsupported))}")
        return 1
    try:
        model = infer.load(path, precision=args.precision, adapter=args.adapter)
        shape = _input_shape(model, args.size)
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        program = model.program({model.inputs[0]: shape})
        ours = model.run(x)
    except UnsupportedModelError as e:
        print(f"\n{e}")
        return 1
    fused = Counter(n.op_type for n in program.graph.nodes)
    print(
        f"\nafter folding and fusion: {len(program.graph.nodes)} nodes, "
        f"{len(program.dispatches)} dispatches ({dict(fused)})"
    )
    sess = _ort_session(path)
    if sess is None:
        print("onnxruntime not installed: parity not checked")
        return 0
    ref = sess.run(None, {model.inputs[0]: x})[0]
    ours = ours if isinstance(ours, np.ndarray) else next(iter(ours.values()))
    err = float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-6))
    ok = err <= args.tolerance
    print(
        f"parity vs onnxruntime at {shape}: max relative error {err:.2e} "
        f"({'OK' if ok else 'FAIL'}, tolerance {args.tolerance:.0e})"
    )
    return 0 if ok else 1


def _timed(fn, runs: int, warmup: int = 2) -> list[float]:  # noqa: ANN001
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _stats(times: list[float]) -> dict:
    a = np.array(times) * 1000
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)), "runs": len(a)}


def cmd_bench(args: argparse.Namespace) -> int:
    import infer

    path = resolve_model(args.model)
    model = infer.load(path, precision=args.precision, adapter=args.adapter)
    shape = _input_shape(model, args.size)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    program = model.program({model.inputs[0]: shape})
    result = {
        "model": str(path),
        "input_shape": list(shape),
        "device": model.device.name,
        "precision": args.precision,
        "gflop": program.flops / 1e9,
        "framesmith": _stats(_timed(lambda: model.run(x), args.runs)),
    }
    sess = _ort_session(path)
    if sess is not None:
        name = sess.get_inputs()[0].name
        result["onnxruntime_cpu"] = _stats(_timed(lambda: sess.run(None, {name: x}), args.runs))
        result["ratio_ours_over_ort"] = (
            result["framesmith"]["median_ms"] / result["onnxruntime_cpu"]["median_ms"]
        )
    ours = result["framesmith"]
    print(
        f"{path.name} at {shape[3]}x{shape[2]} on {model.device.name} ({result['gflop']:.2f} GFLOP)"
    )
    print(
        f"  framesmith      median {ours['median_ms']:8.1f} ms  p95 {ours['p95_ms']:8.1f} ms  "
        f"{result['gflop'] / ours['median_ms'] * 1000:6.1f} GFLOP/s"
    )
    if "onnxruntime_cpu" in result:
        ref = result["onnxruntime_cpu"]
        print(
            f"  onnxruntime CPU median {ref['median_ms']:8.1f} ms  p95 {ref['p95_ms']:8.1f} ms  "
            f"{result['gflop'] / ref['median_ms'] * 1000:6.1f} GFLOP/s"
        )
        print(f"  ratio (ours / onnxruntime): {result['ratio_ours_over_ort']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"  wrote {args.json}")
    return 0


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    try:
        from .training.cli import main as train_main
    except ImportError as e:
        print(
            f"training needs the train extra (pip install 'framesmith[train]'): {e}",
            file=sys.stderr,
        )
        return 2
    return int(train_main(rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m infer", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("model", help="ONNX file, or the name of a bundled model (upscale.onnx)")
        sp.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
        sp.add_argument("--adapter", type=int, default=None, help="GPU adapter index")

    r = sub.add_parser("run", help="run a model on one image")
    common(r)
    r.add_argument("--input", help="input image (default: a generated test frame)")
    r.add_argument("--output", required=True, help="output image (PNG)")
    c = sub.add_parser("check", help="list a model's ops and check parity with onnxruntime")
    common(c)
    c.add_argument("--size", type=_size, default=(64, 48), help="WxH for dynamic inputs")
    c.add_argument("--tolerance", type=float, default=1e-4)
    b = sub.add_parser("bench", help="time per frame against onnxruntime CPU, same run")
    common(b)
    b.add_argument("--size", type=_size, default=(640, 360))
    b.add_argument("--runs", type=int, default=10)
    b.add_argument("--json", help="write the figures to this JSON file")
    sub.add_parser("train", help="train, export and evaluate a model (train extra)", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if argv and argv[0] == "train":
        return cmd_train(argparse.Namespace(), argv[1:])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return {"run": cmd_run, "check": cmd_check, "bench": cmd_bench}[args.command](args)
    except (ModelError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

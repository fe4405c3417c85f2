"""`python -m infer run|check|bench|plot|viz|train|export-web`: the engine from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..bundled import resolve_model
from ..errors import ModelError
from ..ops.conv import VARIANT_NAMES
from ..web.cli import add_parser as export_web_parser
from ..web.cli import cmd_export_web, size_arg
from .benchmark import input_shape, timed, timed_pair
from .check import cmd_check, print_kernel_choices

log = logging.getLogger("infer")

# what a command needs beyond the engine, by the module that was missing
EXTRAS = {"PIL": "tools", "tqdm": "tools", "matplotlib": "plots", "onnxruntime": "dev"}


def _ort_session(path: Path, providers: list[str] | None = None) -> Any:
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
    model = infer.load(path, precision=args.precision, adapter=args.adapter, kernels=args.kernels)
    channels = input_shape(model, (64, 64))[1]
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


def _stats(times: list[float]) -> dict:
    a = np.array(times) * 1000
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)), "runs": len(a)}


def _matrix_mode(args: argparse.Namespace) -> bool:
    return bool(args.models or args.zoo or args.sizes or args.precisions)


def _write_json(args: argparse.Namespace, result: dict, default_stem: str) -> list[Path]:
    """Write --json (if given) and, with --plot/--report, the PNGs and report next to it."""
    pngs: list[Path] = []
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"  wrote {args.json}")
    if args.plot or args.report:
        from . import plots

        src = Path(args.json) if args.json else None
        if src is not None:
            pngs = plots.plot_result(src)
        else:
            pngs = plots.plot_result(result, Path.cwd(), default_stem)
        for png in pngs:
            print(f"  wrote {png}")
        if args.report:
            sections = [{"title": plots.title_for(p), "pngs": [p], "lines": []} for p in pngs]
            if sections:
                sections[-1]["lines"] = plots.figures(result)
                sections[-1]["table"] = plots.table(result)
            print(f"  wrote {plots.write_report(Path(args.report), sections)}")
    return pngs


def cmd_bench(args: argparse.Namespace) -> int:
    if args.layers:
        return cmd_bench_layers(args)
    if args.layouts:
        return cmd_bench_layouts(args)
    if _matrix_mode(args):
        return cmd_bench_matrix(args)
    if not args.model:
        print("error: name a MODEL, or pass --models / --zoo", file=sys.stderr)
        return 2
    import infer

    path = resolve_model(args.model)
    model = infer.load(path, precision=args.precision, adapter=args.adapter, kernels=args.kernels)
    shape = input_shape(model, args.size)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    program = model.program({model.inputs[0]: shape})
    result = {
        "kernels": {k: c.kernel for k, c in program.kernel_choices.items()},
        "model": str(path),
        "input_shape": list(shape),
        "device": model.device.name,
        "precision": args.precision,
        "gflop": program.flops / 1e9,
    }
    sess = _ort_session(path)
    if sess is None:
        result["framesmith"] = _stats(timed(lambda: model.run(x), args.runs, warmup=2))
    else:
        name = sess.get_inputs()[0].name
        cpu: tuple[list[float], list[float]] = ([], [])
        ours, ref = timed_pair(
            lambda: model.run(x), lambda: sess.run(None, {name: x}), args.runs, 2, cpu
        )  # alternated: the same machine load on both sides of the ratio
        result["framesmith"], result["onnxruntime_cpu"] = _stats(ours), _stats(ref)
        result["ratio_ours_over_ort"] = (
            result["framesmith"]["median_ms"] / result["onnxruntime_cpu"]["median_ms"]
        )
        result["cpu_ms"] = {"framesmith": _stats(cpu[0]), "onnxruntime_cpu": _stats(cpu[1])}
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
        ours_cpu, ref_cpu = (result["cpu_ms"][k]["median_ms"] for k in result["cpu_ms"])
        print(
            f"  process CPU time per frame: ours {ours_cpu:.1f} ms, onnxruntime {ref_cpu:.1f} ms, "
            f"ratio {ours_cpu / ref_cpu:.2f}x"
        )
    print_kernel_choices(program)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"  wrote {args.json}")
    return 0


def cmd_bench_matrix(args: argparse.Namespace) -> int:
    from .benchmark import engine_matrix, ort_providers, parse_size

    models = [resolve_model(args.model)] if args.model else []
    models += [resolve_model(m) for m in (args.models or "").split(",") if m]
    if args.zoo:
        from .zoo import zoo_models

        models += zoo_models(args.zoo_dir)
    if not models:
        print("error: no models to benchmark (no bundled models, torch missing?)", file=sys.stderr)
        return 2
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",")] if args.sizes else [args.size]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    precisions = (args.precisions or args.precision).split(",")
    bad = [p for p in precisions if p not in ("fp32", "fp16")]
    if bad:
        print(f"error: precisions must be fp32 and/or fp16, not {bad}", file=sys.stderr)
        return 2
    providers = ort_providers()
    print(
        f"{len(models)} model(s) x {len(sizes)} size(s) x {precisions}, {args.runs} runs each; "
        f"references: {', '.join(providers) or 'none (onnxruntime not installed)'}"
    )
    result = engine_matrix(
        models, sizes, precisions, args.runs, providers, args.adapter, print, args.kernels
    )
    _write_json(args, result, "engine")
    return 0


def cmd_bench_layers(args: argparse.Namespace) -> int:
    import infer

    from . import ceilings
    from .benchmark import layer_profile

    if not args.model:
        print("error: --layers needs a MODEL", file=sys.stderr)
        return 2
    path = resolve_model(args.model)
    model = infer.load(path, precision=args.precision, adapter=args.adapter, kernels=args.kernels)
    ceil = None if args.no_ceilings else ceilings.measure(model.device)
    result = layer_profile(model, args.size, repeats=args.repeats, ceilings=ceil, name=path.stem)
    print(
        f"{path.name} at {'x'.join(map(str, result['input_shape']))} on {result['device']}: "
        f"{len(result['layers'])} dispatches, {result['gflop']:.3f} GFLOP, whole run "
        f"{result['whole_run']['median_ms']:.1f} ms, sum of dispatches run alone "
        f"{result['sum_of_layers_ms']:.1f} ms"
    )
    if ceil:
        print(
            f"  ceilings: {ceil['gflops']:.1f} GFLOP/s (FMA), {ceil['gbps']:.1f} GB/s (copy), "
            f"ridge {ceil['ridge_flop_per_byte']:.1f} flop/byte"
        )
    print(f"  {'ms':>8} {'share':>6} {'GFLOP/s':>8} {'MiB':>7} {'flop/B':>7}  kernel / label")
    total = result["sum_of_layers_ms"] or 1.0
    for r in result["layers"][: args.top]:
        print(
            f"  {r['ms']:8.2f} {100 * r['ms'] / total:5.1f}% {r['gflops']:8.1f} "
            f"{r['bytes'] / 2**20:7.2f} {r['intensity']:7.1f}  "
            f"{r.get('variant') or r['kernel']} / {r['label']}"
        )
    _write_json(args, result, "layers")
    return 0


def cmd_bench_layouts(args: argparse.Namespace) -> int:
    from .benchmark import layout_comparison

    if not args.model:
        print("error: --layouts needs a MODEL", file=sys.stderr)
        return 2
    path = resolve_model(args.model)
    result = layout_comparison(path, args.size, args.runs, args.adapter)
    print(f"{path.name} at {'x'.join(map(str, result['input_shape']))}, tokens stored as:")
    for layout in ("rows", "image"):
        r = result[layout]
        print(
            f"  {layout:5s}  median {r['median_ms']:8.1f} ms  {r['dispatches']:4d} dispatches  "
            f"{r['pool_mib']:7.2f} MiB of tensors  {r['row_major_tensors']} row-major"
        )
    print(f"  ratio (image / rows): {result['ratio_image_over_rows']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"  wrote {args.json}")
    return 0


def cmd_conformance(args: argparse.Namespace) -> int:
    from .conformance import run_conformance, summary, worst_ops

    result = run_conformance(args.filter, progress=print if args.each else None)
    print(summary(result))
    for status in ("unsupported", "wrong", "error"):
        worst = worst_ops(result, status, args.top)
        if worst:
            print(f"  {status}: " + ", ".join(f"{op} {n}" for op, n in worst))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"  wrote {args.json}")
    return 0 if result["counts"]["error"] == 0 else 1


def cmd_plot(args: argparse.Namespace) -> int:
    from . import plots

    sections = []
    for src in args.results:
        try:
            result = json.loads(Path(src).read_text())
            pngs = plots.plot_result(Path(src), Path(args.out_dir) if args.out_dir else None)
        except (OSError, ValueError, KeyError) as e:
            print(f"error: {src}: {e}", file=sys.stderr)
            return 2
        for png in pngs:
            print(f"wrote {png}")
        sections.append(
            {
                "title": f"{Path(src).stem} ({result.get('kind')})",
                "pngs": pngs,
                "lines": plots.figures(result),
                "table": plots.table(result),
                "source": Path(src),
            }
        )
    if args.report:
        print(f"wrote {plots.write_report(Path(args.report), sections)}")
    return 0


def cmd_viz(args: argparse.Namespace) -> int:
    import infer

    from . import plots
    from .images import read_image

    path = resolve_model(args.model)
    model = infer.load(path, precision=args.precision, adapter=args.adapter, kernels=args.kernels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    channels = input_shape(model, (8, 8))[1]
    x = None
    if args.input:
        x = read_image(args.input, channels)
        if args.size and (x.shape[3], x.shape[2]) != tuple(args.size):
            from PIL import Image

            img = Image.open(args.input).convert("L" if channels == 1 else "RGB")
            img = img.resize(tuple(args.size), Image.Resampling.BILINEAR)
            arr = np.asarray(img, np.float32) / 255.0
            arr = arr[..., None] if arr.ndim == 2 else arr
            x = np.ascontiguousarray(arr.transpose(2, 0, 1)[None])
        shape = x.shape
    else:
        shape = input_shape(model, tuple(args.size or (256, 144)))
    program = model.program({model.inputs[0]: tuple(shape)})
    title = f"{path.name} at {'x'.join(map(str, shape))}"
    png = plots.plot_graph(program, out / f"{path.stem}.graph.png", title=title)
    print(
        f"{path.name}: {len(program.graph.nodes)} nodes after folding and fusion "
        f"({sum(1 for n in program.graph.nodes if n.attrs.get('_activation'))} with a fused "
        f"activation), {len(program.dispatches)} dispatches; wrote {png}"
    )
    if x is not None:
        tensors = {model.inputs[0]: x} | model.intermediates(x)
        png = plots.plot_activations(
            tensors, out / f"{path.stem}.activations.png", channels=args.channels, title=title
        )
        print(f"  {len(tensors) - 1} intermediate tensors read back; wrote {png}")
    return 0


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    try:
        from ..training.cli import main as train_main
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

    def common(sp: argparse.ArgumentParser, optional: bool = False) -> None:
        sp.add_argument(
            "model",
            nargs="?" if optional else None,
            help="ONNX file, or the name of a bundled model (upscale.onnx)",
        )
        sp.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
        sp.add_argument("--adapter", type=int, default=None, help="GPU adapter index")
        sp.add_argument(
            "--kernels",
            default=None,
            help="conv kernel choice: measure (default, cached per device), rules, or a "
            f"variant to force ({', '.join(VARIANT_NAMES)})",
        )

    r = sub.add_parser("run", help="run a model on one image")
    common(r)
    r.add_argument("--input", help="input image (default: a generated test frame)")
    r.add_argument("--output", required=True, help="output image (PNG)")
    c = sub.add_parser("check", help="list a model's ops and check parity with onnxruntime")
    common(c)
    c.add_argument("--size", type=size_arg, default=(64, 48), help="WxH for dynamic inputs")
    c.add_argument("--tolerance", type=float, default=1e-4)
    b = sub.add_parser(
        "bench",
        help="time per frame against onnxruntime, same run (or per layer with --layers)",
        description="One model at one size by default. --models/--zoo/--sizes/--precisions "
        "run a matrix against every installed onnxruntime provider; --layers times each "
        "GPU dispatch with its FLOPs and bytes, and measures the device's ceilings.",
    )
    common(b, optional=True)
    b.add_argument("--size", type=size_arg, default=(640, 360))
    b.add_argument("--runs", type=int, default=10)
    b.add_argument("--json", help="write the figures to this JSON file")
    b.add_argument("--models", help="comma-separated ONNX files or bundled names (matrix mode)")
    b.add_argument(
        "--zoo",
        action="store_true",
        help="bundled models + reference architectures (exported with torch)",
    )
    b.add_argument("--zoo-dir", help="where reference architectures are exported (default: tmp)")
    b.add_argument("--sizes", help="comma-separated 360p,720p,1080p or WxH (matrix mode)")
    b.add_argument("--precisions", help="comma-separated fp32,fp16 (matrix mode)")
    b.add_argument("--layers", action="store_true", help="per-dispatch GPU time, FLOPs, bytes")
    b.add_argument("--repeats", type=int, default=3, help="--layers: best of this many runs")
    b.add_argument("--top", type=int, default=15, help="--layers: rows printed")
    b.add_argument(
        "--no-ceilings",
        action="store_true",
        help="--layers: skip measuring the device's compute/bandwidth ceilings",
    )
    b.add_argument(
        "--layouts",
        action="store_true",
        help="time MODEL with its token tensors row-major against all tensors as images",
    )
    b.add_argument("--plot", action="store_true", help="write PNG plots next to --json")
    b.add_argument("--report", help="also write a one-page Markdown report here")
    pl = sub.add_parser("plot", help="PNG plots (and a report) from bench JSON results")
    pl.add_argument("results", nargs="+", help="JSON files from `bench --json`")
    pl.add_argument("--out-dir", help="where PNGs go (default: next to each JSON)")
    pl.add_argument("--report", help="write a one-page Markdown report embedding the PNGs")
    cf = sub.add_parser(
        "conformance",
        help="run every onnx backend node test: pass / wrong / unsupported / error counts",
    )
    cf.add_argument("--filter", help="only tests whose name matches this regex")
    cf.add_argument("--json", help="write every test's outcome to this JSON file")
    cf.add_argument("--top", type=int, default=12, help="ops listed per outcome")
    cf.add_argument("--each", action="store_true", help="print every test's outcome")
    v = sub.add_parser("viz", help="draw the graph after our passes, and activation maps")
    common(v)
    v.add_argument(
        "--size", type=size_arg, default=None, help="WxH (default: the input's, or 256x144)"
    )
    v.add_argument("--input", help="an image: also draw every intermediate activation map")
    v.add_argument("--channels", type=int, default=8, help="channel maps shown per tensor")
    v.add_argument("--out", required=True, help="output folder for the PNGs")
    sub.add_parser("train", help="train, export and evaluate a model (train extra)", add_help=False)
    export_web_parser(sub)
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
        commands = {
            "run": cmd_run,
            "check": cmd_check,
            "bench": cmd_bench,
            "plot": cmd_plot,
            "viz": cmd_viz,
            "conformance": cmd_conformance,
            "export-web": cmd_export_web,
        }
        return commands[args.command](args)
    except (ModelError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # the engine alone has no image or plotting libraries
        extra = EXTRAS.get((e.name or "").split(".")[0], "tools")
        print(
            f"error: `{args.command}` needs {e.name}: pip install 'framesmith[{extra}]'",
            file=sys.stderr,
        )
        return 2

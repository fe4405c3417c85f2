"""Engine benchmarks: our WGSL engine against onnxruntime, and where the time goes per layer.

Every figure compares with a reference measured in the same run, never with a constant.
Results are plain JSON-able dicts with a "kind" that `infer.tools.plots` dispatches on:

- kind "engine": a matrix of models x sizes x precisions. Each row has the input shape, the
  model's GFLOP, our median/p95 ms and GFLOP/s, the same for every onnxruntime execution
  provider installed (CPU always; CUDA, TensorRT... when present), and the ratio ours/ref.
  A precision the engine cannot run (a ModelError, e.g. fp16 without shader-f16) is a row
  with "skipped": reason, never a crash. onnxruntime always runs the fp32 model.
- kind "layers": one row per GPU dispatch from `Executable.profile` (each dispatch run alone
  and waited for), with its FLOPs, bytes moved (sum of every tensor and constant it binds),
  arithmetic intensity and achieved GFLOP/s, slowest first; plus the device ceilings
  (`infer.tools.ceilings`) for a roofline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..compile import Program
from ..errors import ModelError
from ..layout import buffer_bytes, element_size
from ..ops.registry import Dispatch

if TYPE_CHECKING:
    from ..model import Model

log = logging.getLogger(__name__)

SIZES = {"360p": (640, 360), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080)}
_SKIP_PROVIDERS = {"AzureExecutionProvider"}  # a remote-call EP, not a compute device


def parse_size(text: str) -> tuple[int, int]:
    """'720p' or '1280x720' -> (w, h)."""
    t = text.strip().lower()
    if t in SIZES:
        return SIZES[t]
    try:
        w, h = (int(v) for v in t.split("x"))
    except ValueError:
        raise ValueError(f"size must be one of {list(SIZES)} or WxH, not {text!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, not {text!r}")
    return w, h


def size_label(size: tuple[int, int]) -> str:
    for name, wh in SIZES.items():
        if wh == tuple(size):
            return name
    return f"{size[0]}x{size[1]}"


def dispatch_bytes(program: Program, d: Dispatch) -> int:
    """Bytes a dispatch binds: every tensor it reads or writes and every constant it reads."""
    total = 0
    esize = element_size(program.precision)
    for b in d.bindings:
        if b.size is not None:
            total += b.size
        elif b.kind == "const":
            total += max(0, program.consts[b.ref].nbytes - b.offset)
        else:
            v = program.values[b.ref]
            total += buffer_bytes(v.shape, esize, v.layout)
    return total


def timed(fn: Callable[[], object], runs: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def timed_pair(
    a: Callable[[], object],
    b: Callable[[], object],
    runs: int,
    warmup: int = 1,
    cpu: tuple[list[float], list[float]] | None = None,
) -> tuple[list[float], list[float]]:
    """Times of `a` and `b` run alternately, so a burst of load on a shared machine hits both
    sides of a ratio alike instead of whichever happened to be running. With `cpu`, this
    process's CPU time of each call is appended there too: on a CPU adapter (lavapipe) and
    onnxruntime's CPU provider both sides compute on this process's threads, and CPU time
    moves far less than wall time when other processes share the cores."""
    for _ in range(warmup):
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(runs):
        for k, (fn, out) in enumerate(((a, ta), (b, tb))):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
            if cpu is not None:
                cpu[k].append(time.process_time() - c0)
    return ta, tb


def stats(times: list[float], gflop: float | None = None) -> dict:
    a = np.asarray(times) * 1000
    out = {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)), "runs": len(a)}
    if gflop is not None:
        out["gflops"] = gflop / out["median_ms"] * 1000
    return out


def ort_providers() -> list[str]:
    """onnxruntime execution providers worth comparing with ([] when not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return [p for p in ort.get_available_providers() if p not in _SKIP_PROVIDERS]


def _ort_key(provider: str) -> str:
    return "ort_" + provider.removesuffix("ExecutionProvider").lower()


def _ort_session(path: Path, provider: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    providers = (
        [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    )
    sess = ort.InferenceSession(str(path), opts, providers=providers)
    if sess.get_providers()[0] != provider:  # onnxruntime fell back silently: say so
        raise RuntimeError(f"{provider} did not load (got {sess.get_providers()})")
    return sess


def input_shape(model: Model, size: tuple[int, int]) -> tuple[int, ...]:
    """The model's first input at this width and height (its fixed dims kept)."""
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


def engine_matrix(
    models: list[Path],
    sizes: list[tuple[int, int]],
    precisions: list[str],
    runs: int = 10,
    providers: list[str] | None = None,
    adapter: int | None = None,
    progress: Callable[[str], object] | None = None,  # called with each row, e.g. print
    kernels: str | None = None,  # conv kernel choice (infer.kernel_choice)
) -> dict:
    import infer

    providers = ort_providers() if providers is None else providers
    rows: list[dict] = []
    device_name = None
    for path in models:
        sessions: dict[str, Any] = {}
        for prov in providers:
            try:
                sessions[prov] = _ort_session(path, prov)
            except Exception as e:  # noqa: BLE001 - an EP that will not load is a note
                log.warning("%s: onnxruntime %s unavailable: %s", path.name, prov, e)
        loaded: dict[str, Model] = {}
        for size in sizes:
            refs: dict[str, dict] | None = None
            for precision in precisions:
                row: dict = {
                    "model": path.stem,
                    "path": str(path),
                    "size": size_label(size),
                    "precision": precision,
                }
                try:
                    if precision not in loaded:
                        loaded[precision] = infer.load(
                            path, precision=precision, adapter=adapter, kernels=kernels
                        )
                    model = loaded[precision]
                    device_name = model.device.name
                    shape = input_shape(model, size)
                    row["input_shape"] = list(shape)
                    x = np.random.default_rng(0).random(shape, dtype=np.float32)
                    program = model.program({model.inputs[0]: shape})
                    gflop = program.flops / 1e9
                    row["gflop"] = gflop
                    row["kernels"] = {k: c.kernel for k, c in program.kernel_choices.items()}
                    model.run(x)  # compiled before timing starts
                except ModelError as e:
                    row["skipped"] = str(e)
                    rows.append(row)
                    if progress:
                        progress(f"{path.stem} {size_label(size)} {precision}: skipped ({e})")
                    continue
                # ours alternates with each reference (the fp32 model under every provider)
                ours_times: list[float] = []
                refs = {}
                for prov, sess in sessions.items():
                    name = sess.get_inputs()[0].name
                    try:
                        t_ours, t = timed_pair(
                            partial(model.run, x), partial(sess.run, None, {name: x}), runs
                        )
                        ours_times += t_ours
                        refs[_ort_key(prov)] = stats(t, gflop) | {"provider": prov}
                    except Exception as e:  # noqa: BLE001 - a provider failing is a row
                        refs[_ort_key(prov)] = {"provider": prov, "error": str(e)}
                if not ours_times:
                    ours_times = timed(partial(model.run, x), runs)
                row["framesmith"] = stats(ours_times, gflop)
                row["references"] = refs
                row["ratios"] = {
                    k: row["framesmith"]["median_ms"] / r["median_ms"]
                    for k, r in refs.items()
                    if "median_ms" in r
                }
                rows.append(row)
                if progress:
                    progress(format_row(row))
    return {
        "kind": "engine",
        "device": device_name,
        "runs": runs,
        "providers": providers,
        "sizes": [size_label(s) for s in sizes],
        "precisions": precisions,
        "rows": rows,
    }


def format_row(row: dict) -> str:
    head = f"{row['model']:<18}{row['size']:>10} {row['precision']:<5}"
    if "skipped" in row:
        return f"{head} skipped: {row['skipped']}"
    ours = row["framesmith"]
    text = (
        f"{head} ours {ours['median_ms']:8.1f} ms (p95 {ours['p95_ms']:7.1f}) "
        f"{ours['gflops']:6.1f} GFLOP/s"
    )
    for k, r in row.get("references", {}).items():
        if "median_ms" in r:
            text += f" | {k} {r['median_ms']:7.1f} ms, ours/ref {row['ratios'][k]:.2f}x"
    return text


def layer_profile(
    model: Model,
    size: tuple[int, int],
    repeats: int = 3,
    ceilings: dict | None = None,
    name: str = "model",
) -> dict:
    """Per-dispatch GPU time with FLOPs, bytes and intensity, slowest first."""
    shape = input_shape(model, size)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    arrays = {model.inputs[0]: x}
    exe = model.executable(arrays)
    program = exe.program
    model.run(x)  # warm: pipelines compiled, buffers touched
    timings = exe.profile(arrays, repeats=repeats)
    layers = []
    for d, t in zip(program.dispatches, timings, strict=True):
        nbytes = dispatch_bytes(program, d)
        ms = max(t["ms"], 1e-6)
        layers.append(
            t
            | {
                "bytes": nbytes,
                "intensity": d.flops / nbytes if nbytes else 0.0,
                "gflops": d.flops / ms / 1e6,
                "gbps": nbytes / ms / 1e6,
            }
        )
    layers.sort(key=lambda r: -r["ms"])
    total = sum(r["ms"] for r in layers)
    t_run = stats(timed(lambda: model.run(x), max(2, repeats)))
    return {
        "kind": "layers",
        "model": name,
        "device": model.device.name,
        "input_shape": list(shape),
        "precision": model.precision,
        "gflop": program.flops / 1e9,
        "sum_of_layers_ms": total,
        "whole_run": t_run,
        "layers": layers,
        "ceilings": ceilings,
    }


def layout_comparison(
    path: Path, size: tuple[int, int], runs: int = 10, adapter: int | None = None
) -> dict:
    """The model with its token tensors row-major (the engine's choice) against the same with
    every tensor an image (infer.layout), timed alternately in one run: dispatches, pooled
    buffer bytes, median ms and the ratio image / rows."""
    from ..device import get_device
    from ..graph import from_onnx, load_proto
    from ..model import Model

    graph = from_onnx(load_proto(path))
    device = get_device(adapter)
    models = {layout: Model(graph, device, token_layout=layout) for layout in ("rows", "image")}
    shape = input_shape(models["rows"], size)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    result: dict[str, Any] = {"kind": "layouts", "model": path.stem, "input_shape": list(shape)}
    for layout, model in models.items():
        exe = model.executable({model.inputs[0]: x})
        result[layout] = {
            "dispatches": len(exe.program.dispatches),
            "pool_mib": exe.pool_bytes / 2**20,
            "row_major_tensors": sum(
                1 for v in exe.program.values.values() if v.const is None and v.layout == "rows"
            ),
        }
    rows_t, image_t = timed_pair(
        lambda: models["rows"].run(x), lambda: models["image"].run(x), runs, warmup=2
    )
    result["rows"].update(stats(rows_t))
    result["image"].update(stats(image_t))
    result["ratio_image_over_rows"] = result["image"]["median_ms"] / result["rows"]["median_ms"]
    return result

"""Every architecture spandrel can build, tried as a user would: small widths, random weights,
exported with the TorchScript exporter (opset 17, dynamic height and width) and, with
`--dynamo`, with torch.export (opset 18), loaded by the engine and compared with onnxruntime.

`python -m infer.training.zoo.spandrel_walk [--dynamo]` walks the whole registry and rewrites
the table in docs/models.md and the op types per class (spandrel_walk.json);
`tests/infer/test_spandrel.py` checks a subset that covers every op type (spandrel_table).

spandrel (the loader chaiNNer and ComfyUI use) is the dev extra's; it imports torchvision for
three architectures (LaMa, RestoreFormer and spandrel_extra_arches' helpers). PyPI's
torchvision 0.28.0, the one built for torch 2.13.0, links CUDA torch's libraries
(libc10_cuda.so), so with the CPU torch its import raises. `import_spandrel` then puts a
stand-in module in its place with the three names spandrel imports (InterpolationMode, rotate,
normalize); calling one raises, so an architecture that really uses torchvision fails with
that reason in the table, and nothing is downloaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import importlib.machinery
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .spandrel_configs import FIXED_SIZE, SMALL, TORCHVISION_STAND_IN
from .spandrel_table import (  # noqa: F401 - the walk's public names
    BASE_SIZE,
    NOT_TRIED,
    OPS_FILE,
    RTOL,
    TABLE_END,
    TABLE_START,
    Row,
    classes_in,
    default_subset,
    passing_in,
    read_rows,
    render_table,
    write_ops,
    write_table,
)

STAGE, ROW = "spandrel-walk stage: ", "spandrel-walk row: "
OPSET, DYNAMO_OPSET = 17, 18
UNKNOWN_MULTIPLE = 16  # when spandrel does not recognise the small config: UNets, windows
_MODULE = "infer.training.zoo.spandrel_walk"  # not __name__: "__main__" under -m
DOC = Path(__file__).resolve().parents[3] / "docs" / "models.md"


def _stand_in_torchvision() -> None:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(TORCHVISION_STAND_IN)

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    functional.rotate = unavailable  # type: ignore[attr-defined]
    functional.normalize = unavailable  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    root.__version__ = "stand-in"  # type: ignore[attr-defined]
    for module in (root, transforms, functional):  # torch.onnx's dynamo exporter asks find_spec
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    sys.modules.update(
        {
            "torchvision": root,
            "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional,
        }
    )


def import_spandrel() -> Any:
    """spandrel's registry, with spandrel_extra_arches' architectures when it is installed."""
    try:
        import torchvision  # type: ignore[import-untyped]  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or RuntimeError from a CUDA-linked build
        sys.modules.pop("torchvision", None)
        _stand_in_torchvision()
    import spandrel  # type: ignore[import-untyped]

    registry = spandrel.MAIN_REGISTRY
    try:
        import spandrel_extra_arches  # type: ignore[import-untyped]

        registry = registry.copy()
        registry.add(*spandrel_extra_arches.EXTRA_REGISTRY, ignore_duplicates=True)
    except ImportError:
        pass
    return registry


def classes(registry: Any) -> list[tuple[str, type[nn.Module]]]:
    """(architecture id, network class) for every network class of every architecture in the
    registry, found in the module that defines its Architecture (RealCUGAN has four)."""
    found = []
    for support in registry.architectures():
        arch = support.architecture
        module = importlib.import_module(type(arch).__module__)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, nn.Module):
                found.append((str(arch.id), value))
    return found


class _Call(nn.Module):
    """The network called with the image (and mask) only: optional arguments of its forward
    (RealCUGAN's alpha) keep their defaults instead of becoming graph inputs."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.net(*inputs)


class _Timeout(BaseException):  # not caught by the stages' `except Exception`
    pass


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """SIGALRM after `seconds` (main thread only): one architecture may not take the run."""

    def fire(signum: int, frame: Any) -> None:
        raise _Timeout(f"over {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else ""
    for candidate in text:  # the exporter's own message is under a traceback
        if "Error" in candidate or "unsupported" in candidate.lower():
            line = candidate
            break
    return f"{type(e).__name__}: {line}"[:160]


def _randomise(model: nn.Module, seed: int) -> None:
    """Nudge every parameter: zero-initialised layers (spandrel's residual tails, LayerNorm
    biases, layer scales) would hide whole branches from the comparison."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)


def _size(req: Any, base: tuple[int, int] = BASE_SIZE) -> tuple[int, int]:
    m = max(1, int(getattr(req, "multiple_of", 1)))
    lo = int(getattr(req, "minimum", 0))
    h, w = (max(lo, -(-d // m) * m) for d in base)
    if getattr(req, "square", False):
        h = w = max(h, w)
    return h, w


def _inputs(n: int, channels: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.random((1, channels, *size), dtype=np.float32)
    if n == 1:
        return [image]
    mask = (rng.random((1, 1, *size)) > 0.7).astype(np.float32)
    return [image, mask]


def try_one(
    arch: str, cls: type[nn.Module], registry: Any, timeout: int = 240, dynamo: bool = False
) -> Row:
    """Instantiate, describe with spandrel, export, load, compare: the first failure is the
    row's reason. With `dynamo`, the same network is also exported by torch.export and that
    file checked the same way (its own deadline: it takes longer than the rest together)."""
    row = Row(arch, cls.__name__)
    start = time.monotonic()
    built = None
    try:
        with _deadline(timeout):
            built = _build(row, cls, registry)
            if built is not None:
                _torchscript(row, built)
    except _Timeout as e:
        row.reason = f"timed out ({e}) at: {row.reason or 'instantiate'}"
    row.seconds = time.monotonic() - start
    if dynamo and built is not None and row.exports:
        try:
            with _deadline(timeout * 2):
                _dynamo(row, built)
        except _Timeout as e:
            row.dynamo = f"timed out ({e}) at: {row.dynamo}"
    return row


def _stage(row: Row, what: str) -> None:
    """Where the run is: the reason if it times out or crashes there (stderr, for the
    parent of an isolated run)."""
    row.reason = what
    print(f"{STAGE}{what}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class _Built:
    model: nn.Module
    names: list[str]
    feeds: list[np.ndarray]  # at the test size
    example: tuple[torch.Tensor, ...]  # at the trace size
    trace: tuple[int, int]


def _build(row: Row, cls: type[nn.Module], registry: Any) -> _Built | None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    _stage(row, "instantiate")
    try:
        model = cls(**SMALL.get(cls.__name__, {}))
    except Exception as e:  # noqa: BLE001 - whatever the architecture raises is the reason
        row.reason = f"cannot build at small widths: {_first_line(e)}"
        return None
    channels, n_inputs = 3, 1
    req: Any = types.SimpleNamespace(multiple_of=UNKNOWN_MULTIPLE, minimum=0, square=False)
    try:
        desc = registry.load(model.state_dict())
        channels, req = desc.input_channels, desc.size_requirements
        n_inputs = 2 if desc.purpose == "Inpainting" else 1
        model = desc.model
    except Exception:  # noqa: BLE001 - spandrel cannot detect our small config: use it as built
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = first.in_channels if first is not None else channels
    _randomise(model, 0)
    row.size = _size(req)
    trace = _size(req, (row.size[0] + 8, row.size[1] + 8))
    if cls.__name__ in FIXED_SIZE:  # built for one input size: traced and tested at it
        row.size = trace = (FIXED_SIZE[cls.__name__],) * 2
    example = tuple(torch.from_numpy(a) for a in _inputs(n_inputs, channels, trace, 2))
    return _Built(
        model.eval(), ["input", "mask"][:n_inputs], _inputs(n_inputs, channels, row.size, 1),
        example, trace,
    )  # fmt: skip


def _torchscript(row: Row, b: _Built) -> None:
    import onnx

    _stage(row, "export")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        dyn = {name: {2: "height", 3: "width"} for name in b.names}
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _Call(b.model).eval(), b.example, str(path), input_names=b.names,
                    opset_version=OPSET, dynamic_axes=dyn, dynamo=False,
                )  # fmt: skip
        except Exception as e:  # noqa: BLE001 - the exporter's reason is the row's
            row.reason = f"export fails in torch: {_first_line(e)}"
            return
        row.exports = True
        row.ops = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
        reason, loads, error = _check(path, b, lambda what: _stage(row, what))
    row.loads, row.error, row.reason = loads, error, reason


class _One(nn.Module):
    """torch.export names its dynamic dimensions by forward's parameters: one per input."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, input: torch.Tensor) -> Any:
        return self.net(input)


class _Two(_One):
    def forward(self, input: torch.Tensor, mask: torch.Tensor) -> Any:  # type: ignore[override]
        return self.net(input, mask)


def _dynamo(row: Row, b: _Built) -> None:
    """torch.export at opset 18, height and width left to torch (Dim.AUTO): a size the
    export specialises shows as onnxruntime or the engine failing at the test size."""

    def stage(what: str) -> None:
        row.dynamo = what
        print(f"{STAGE}dynamo {what}", file=sys.stderr, flush=True)

    stage("export")
    auto = torch.export.Dim.AUTO
    shapes = {name: {2: auto, 3: auto} for name in b.names}
    # eval again: the TorchScript export restores its wrapper's (training) mode, and a
    # network in training mode exports its dropout as RandomUniformLike
    wrapper = (_One if len(b.names) == 1 else _Two)(b.model).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            with torch.no_grad(), warnings.catch_warnings(), _quiet_exporter():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapper, b.example, str(path), opset_version=DYNAMO_OPSET, dynamo=True,
                    dynamic_shapes=shapes, verbose=False,
                )  # fmt: skip
        except Exception as e:  # noqa: BLE001 - the exporter's reason is the row's
            cause = e.__cause__ if e.__cause__ is not None else e
            row.dynamo = f"export fails in torch: {_first_line(cause)}"
            return
        reason, _, error = _check(path, b, stage)
    row.dynamo_error = error
    row.dynamo = f"ok {error:.1e}" if row.dynamo_passes else reason


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.export logs every torchvision op it cannot register (the stand-in) at ERROR."""
    import logging

    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _check(path: Path, b: _Built, stage: Any) -> tuple[str, bool, float | None]:
    """(reason, loads, max relative error) of the file at `path` against onnxruntime."""
    import onnx
    import onnxruntime as ort

    import infer

    proto = onnx.load(str(path))
    names = [i.name for i in proto.graph.input][: len(b.feeds)]
    feed = dict(zip(names, b.feeds, strict=True))
    size = f"{b.feeds[0].shape[2]}x{b.feeds[0].shape[3]}"
    stage("onnxruntime")
    try:
        ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    except Exception as e:  # noqa: BLE001
        trace = f"{b.trace[0]}x{b.trace[1]}"
        return (
            f"onnxruntime cannot run the export at {size} (traced at {trace}): " + (_first_line(e)),
            False,
            None,
        )
    stage("load and run in the engine")
    try:
        got = infer.load(proto).run(feed if len(feed) > 1 else b.feeds[0])
    except infer.UnsupportedModelError as e:
        return "declined: " + "; ".join(str(e).splitlines()[1:4]).strip()[:200], False, None
    except infer.ModelError as e:
        return f"engine refuses: {str(e).splitlines()[0][:160]}", False, None
    except Exception as e:  # noqa: BLE001 - a bare exception is a bug; say so
        return f"engine error (a bug): {_first_line(e)}", False, None
    outs = list(got.values()) if isinstance(got, dict) else [got]
    errors = []
    for g, r in zip(outs, ref, strict=False):
        if g.shape != r.shape:
            return f"output shape {list(g.shape)} != onnxruntime's {list(r.shape)}", True, None
        scale = max(float(np.abs(r).max()), 1e-6)
        errors.append(float(np.abs(g - r).max()) / scale)
    error = max(errors) if errors else 0.0
    return ("" if error <= RTOL else f"max relative error {error:.1e}"), True, error


def run_group(
    pairs: list[tuple[str, str]],
    timeout: int = 150,
    dynamo: bool | Collection[tuple[str, str]] = False,
) -> list[Row]:
    """try_one for each (architecture, class) in child processes, several to a child so that
    torch, spandrel and the device start once: torch's tracer segfaults on some
    architectures (GRL) and a hung export must not hold the walk, so a child that dies names
    the class and stage it died in and the rest go on in a new child."""
    rows: dict[tuple[str, str], Row] = {}
    todo = list(pairs)
    code: int | None
    both = set(pairs) if dynamo is True else set(dynamo or ())  # torch.export's too
    per = timeout * (3 if both else 1) + 30
    while todo:
        cmd = [sys.executable, "-m", _MODULE, "--child", str(timeout)]
        cmd += [f"{a}:{c}" + (":dynamo" if (a, c) in both else "") for a, c in todo]
        out, err, code = "", "", None  # None: timed out
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=per * len(todo) + 60)
            out, err, code = done.stdout, done.stderr, done.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            code = None
        for line in out.splitlines():
            if line.startswith(ROW):
                row = Row.from_json(json.loads(line[len(ROW) :]))
                rows[(row.arch, row.cls)] = row
        todo = [p for p in todo if p not in rows]
        if todo:  # the child stopped in todo[0]: name where, go on with the rest
            arch, cls = todo.pop(0)
            stage = _last_stage(err)
            how = "timed out" if code is None else (
                f"crashes (signal {-code})" if code < 0 else f"crashes (exit {code})"
            )  # fmt: skip
            where = "torch's exporter" if stage == "export" else stage
            rows[(arch, cls)] = Row(
                arch, cls, exports=not stage.startswith(("instantiate", "export", "start")),
                reason=f"{how} in {where}",
            )  # fmt: skip
    return [rows[p] for p in pairs]


def _last_stage(stderr: str) -> str:
    stages = [ln[len(STAGE) :] for ln in stderr.splitlines() if ln.startswith(STAGE)]
    return stages[-1] if stages else "start-up"


def walk(
    timeout: int = 150,
    only: set[str] | None = None,
    budget_s: float | None = None,
    dynamo: bool = False,
    group: int = 8,
    progress: Callable[[list[Row]], None] | None = None,
) -> list[Row]:
    """Every network class of the registry, `group` to a child process; after `budget_s`
    the rest are listed as not tried."""
    registry = import_spandrel()
    pairs = [(a, c.__name__) for a, c in classes(registry) if only is None or a in only]
    start = time.monotonic()
    rows: list[Row] = []
    for i in range(0, len(pairs), group):
        chunk = pairs[i : i + group]
        if budget_s is not None and time.monotonic() - start > budget_s:
            rows += [Row(a, c, reason=NOT_TRIED) for a, c in chunk]
            continue
        rows += run_group(chunk, timeout, dynamo)
        for r in rows[-len(chunk) :]:
            print(f"{r.arch}/{r.cls}: {'ok' if r.passes else r.reason} "
                  f"{r.dynamo} ({r.seconds:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip
        if progress is not None:
            progress(rows)
    return rows


def _child(timeout: int, names: list[str]) -> None:
    # the ops' rules pick conv kernels: timing each variant of each new conv (the engine's
    # default, seconds to a minute each on lavapipe) measures the device, not the walk
    os.environ.setdefault("FRAMESMITH_KERNELS", "rules")
    registry = import_spandrel()
    found = {(a, c.__name__): c for a, c in classes(registry)}
    for name in names:
        arch, cls, *dynamo = name.split(":")
        row = try_one(arch, found[(arch, cls)], registry, timeout, bool(dynamo))
        print(ROW + json.dumps(dataclasses.asdict(row)), flush=True)


def main(argv: list[str] | None = None) -> None:
    """The full walk: rewrites the table in docs/models.md and spandrel_walk.json."""
    parser = argparse.ArgumentParser(prog="python -m infer.training.zoo.spandrel_walk")
    parser.add_argument("--dynamo", action="store_true", help="also export with torch.export")
    parser.add_argument("--timeout", type=int, default=150, help="seconds per class")
    parser.add_argument("--only", nargs="*", help="architecture ids (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print, rewrite nothing")
    parser.add_argument("--record", type=Path, help="write the rows here, not the docs")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.names)
        return
    only = set(args.only) if args.only else None
    write = None if args.no_write else _writer(args.record)
    rows = walk(args.timeout, only, dynamo=args.dynamo, progress=write)
    print(render_table(rows) if args.no_write else summary(rows))


def _writer(record: Path | None = None) -> Callable[[list[Row]], None]:
    """Rewrites the table and the record after every group (a long --dynamo walk that is
    stopped keeps what it found); a class not walked yet keeps its recorded row."""
    old = {(r.arch, r.cls): r for r in (read_rows() if OPS_FILE.is_file() else [])}
    order = [(a, c.__name__) for a, c in classes(import_spandrel())]

    def write(rows: list[Row]) -> None:
        done = {(r.arch, r.cls): r for r in rows}
        merged = [done.get(p) or old.get(p) or Row(*p, reason=NOT_TRIED) for p in order]
        if record is not None:
            write_ops(merged, record)
            return
        write_table(DOC, merged)
        write_ops(merged)

    return write


def summary(rows: list[Row]) -> str:
    exports = [r for r in rows if r.exports]
    runs = [r for r in exports if "onnxruntime" not in r.reason]
    text = (
        f"{len(rows)} classes: torch exports {len(exports)}, onnxruntime runs {len(runs)}, "
        f"the engine matches {sum(r.passes for r in rows)}"
    )
    dyn = [r for r in rows if r.dynamo and not r.dynamo.startswith("not tried")]
    if dyn:
        d_exp = [
            r for r in dyn if not r.dynamo.startswith(("export fails", "timed out at: export"))
        ]
        d_run = [r for r in d_exp if "onnxruntime" not in r.dynamo]
        text += (
            f"; torch.export: exports {len(d_exp)}, onnxruntime runs {len(d_run)}, "
            f"the engine matches {sum(r.dynamo_passes for r in dyn)}"
        )
    return text


if __name__ == "__main__":
    main()

"""Every architecture spandrel can build, tried as a user would: small widths, random weights,
exported with the TorchScript exporter (opset 17, dynamic height and width), loaded by the
engine and compared with onnxruntime. `tests/infer/test_spandrel.py` runs it and keeps the
table in docs/models.md.

spandrel (the loader chaiNNer and ComfyUI use) is the dev extra's; it imports torchvision for
three architectures (LaMa, RestoreFormer and spandrel_extra_arches' helpers). PyPI's
torchvision 0.28.0, the one built for torch 2.13.0, links CUDA torch's libraries
(libc10_cuda.so), so with the CPU torch its import raises. `import_spandrel` then puts a
stand-in module in its place with the three names spandrel imports (InterpolationMode, rotate,
normalize); calling one raises, so an architecture that really uses torchvision fails with
that reason in the table, and nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
import signal
import subprocess
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .spandrel_configs import FIXED_SIZE, SMALL, TORCHVISION_STAND_IN

STAGE, ROW = "spandrel-walk stage: ", "spandrel-walk row: "
OPSET = 17
RTOL = 1e-4
BASE_SIZE = (24, 28)  # (H, W), raised to what the architecture asks for
UNKNOWN_MULTIPLE = 16  # when spandrel does not recognise the small config: UNets, windows


@dataclasses.dataclass
class Row:
    """One architecture class: how far it got and why it stopped."""

    arch: str
    cls: str
    exports: bool = False
    loads: bool = False
    error: float | None = None  # max relative error against onnxruntime
    size: tuple[int, int] = BASE_SIZE
    reason: str = ""
    seconds: float = 0.0

    @property
    def passes(self) -> bool:
        return self.error is not None and self.error <= RTOL


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


def try_one(arch: str, cls: type[nn.Module], registry: Any, timeout: int = 240) -> Row:
    """Instantiate, describe with spandrel, export, load, compare: the first failure is the
    row's reason."""
    row = Row(arch, cls.__name__)
    start = time.monotonic()
    try:
        with _deadline(timeout):
            _try(row, cls, registry)
    except _Timeout as e:
        row.reason = f"timed out ({e}) at: {row.reason or 'instantiate'}"
    row.seconds = time.monotonic() - start
    return row


def _stage(row: Row, what: str) -> None:
    """Where the run is: the reason if it times out or crashes there (stderr, for the
    parent of an isolated run)."""
    row.reason = what
    print(f"{STAGE}{what}", file=sys.stderr, flush=True)


def _try(row: Row, cls: type[nn.Module], registry: Any) -> None:
    import onnx
    import onnxruntime as ort

    import infer

    torch.manual_seed(0)
    torch.set_num_threads(1)
    _stage(row, "instantiate")
    try:
        model = cls(**SMALL.get(cls.__name__, {}))
    except Exception as e:  # noqa: BLE001 - whatever the architecture raises is the reason
        row.reason = f"cannot build at small widths: {_first_line(e)}"
        return
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
    model = _Call(model.eval())
    row.size = _size(req)
    trace = _size(req, (row.size[0] + 8, row.size[1] + 8))
    if cls.__name__ in FIXED_SIZE:  # built for one input size: traced and tested at it
        row.size = trace = (FIXED_SIZE[cls.__name__],) * 2
    feeds = _inputs(n_inputs, channels, row.size, 1)
    names = ["input", "mask"][:n_inputs]
    _stage(row, "export")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        dyn = {name: {2: "height", 3: "width"} for name in names}
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                example = tuple(torch.from_numpy(a) for a in _inputs(n_inputs, channels, trace, 2))
                torch.onnx.export(
                    model, example, str(path), input_names=names, opset_version=OPSET,
                    dynamic_axes=dyn, dynamo=False,
                )  # fmt: skip
        except Exception as e:  # noqa: BLE001 - the exporter's reason is the row's
            row.reason = f"export fails in torch: {_first_line(e)}"
            return
        row.exports = True
        proto = onnx.load(str(path))
        feed = dict(zip(names, feeds, strict=True))
        _stage(row, "onnxruntime")
        try:
            ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
                None, feed
            )
        except Exception as e:  # noqa: BLE001
            row.reason = (
                f"onnxruntime cannot run the export at {row.size[0]}x{row.size[1]} "
                f"(traced at {trace[0]}x{trace[1]}): {_first_line(e)}"
            )
            return
        _stage(row, "load and run in the engine")
        try:
            got = infer.load(proto).run(feed if n_inputs > 1 else feeds[0])
        except infer.UnsupportedModelError as e:
            row.reason = "declined: " + "; ".join(str(e).splitlines()[1:4]).strip()[:200]
            return
        except infer.ModelError as e:
            row.reason = f"engine refuses: {str(e).splitlines()[0][:160]}"
            return
        except Exception as e:  # noqa: BLE001 - a bare exception is a bug; say so
            row.reason = f"engine error (a bug): {_first_line(e)}"
            return
        row.loads = True
        outs = list(got.values()) if isinstance(got, dict) else [got]
        errors = []
        for g, r in zip(outs, ref, strict=False):
            if g.shape != r.shape:
                row.reason = f"output shape {list(g.shape)} != onnxruntime's {list(r.shape)}"
                return
            scale = max(float(np.abs(r).max()), 1e-6)
            errors.append(float(np.abs(g - r).max()) / scale)
        row.error = max(errors) if errors else 0.0
        row.reason = "" if row.passes else f"max relative error {row.error:.1e}"


def run_isolated(arch: str, cls: str, timeout: int = 240) -> Row:
    """try_one in a child process: torch's tracer segfaults on some architectures (GRL), and
    a hung export must not hold the walk. The child's last stage names where it stopped."""
    cmd = [sys.executable, "-m", __name__, arch, cls, str(timeout)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return Row(arch, cls, reason=f"timed out at: {_last_stage(err)}")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(ROW):
            data = json.loads(line[len(ROW) :])
            data["size"] = tuple(data["size"])
            return Row(**data)
    stage = _last_stage(done.stderr)
    how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
    where = "torch's exporter" if stage == "export" else stage
    return Row(arch, cls, exports=stage not in ("instantiate", "export"),
               reason=f"crashes ({how}) in {where}")  # fmt: skip


def _last_stage(stderr: str) -> str:
    stages = [ln[len(STAGE) :] for ln in stderr.splitlines() if ln.startswith(STAGE)]
    return stages[-1] if stages else "start-up"


NOT_TRIED = "not tried: the walk's time budget was spent"


def walk(
    timeout: int = 240, only: set[str] | None = None, budget_s: float | None = None
) -> list[Row]:
    """Every network class of the registry, each in its own process; after `budget_s` the
    rest are listed as not tried (the whole walk takes about 20 minutes on 2 cores)."""
    registry = import_spandrel()
    start = time.monotonic()
    rows = []
    for arch, cls in classes(registry):
        if only is not None and arch not in only:
            continue
        if budget_s is not None and time.monotonic() - start > budget_s:
            rows.append(Row(arch, cls.__name__, reason=NOT_TRIED))
            continue
        rows.append(run_isolated(arch, cls.__name__, timeout))
    return rows


def _main(arch: str, cls_name: str, timeout: str) -> None:
    registry = import_spandrel()
    (cls,) = [c for a, c in classes(registry) if a == arch and c.__name__ == cls_name]
    row = try_one(arch, cls, registry, int(timeout))
    print(ROW + json.dumps(dataclasses.asdict(row)), flush=True)


if __name__ == "__main__":
    _main(*sys.argv[1:4])


TABLE_START = "<!-- spandrel table: generated by tests/infer/test_spandrel.py -->"
TABLE_END = "<!-- end of the spandrel table -->"


def render_table(rows: list[Row]) -> str:
    """Markdown: one line per network class, what it got to and why it stopped there."""
    lines = [
        "| architecture | class | exports? | loads? | parity (max rel. error) | test size | "
        "reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        parity = "-" if r.error is None else f"{'ok' if r.passes else 'NO'} {r.error:.1e}"
        reason = r.reason.replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {r.arch} | {r.cls} | {'yes' if r.exports else 'no'} | "
            f"{'yes' if r.loads else 'no'} | {parity} | {r.size[0]}x{r.size[1]} | {reason} |"
        )
    return "\n".join(lines)


def passing_in(doc: str) -> set[tuple[str, str]]:
    """(architecture, class) of the rows the table in `doc` says pass."""
    if TABLE_START not in doc:
        return set()
    body = doc.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    out = set()
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[4].startswith("ok "):
            out.add((cells[0], cells[1]))
    return out


def write_table(doc_path: Path, rows: list[Row]) -> None:
    """Replace the table between the markers (or append it with them)."""
    doc = doc_path.read_text(encoding="utf-8")
    table = f"{TABLE_START}\n{render_table(rows)}\n{TABLE_END}"
    if TABLE_START in doc and TABLE_END in doc:
        head, rest = doc.split(TABLE_START, 1)
        doc = head + table + rest.split(TABLE_END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + table + "\n"
    doc_path.write_text(doc, encoding="utf-8")

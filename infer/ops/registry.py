"""Op registry: (domain, op_type, since) -> OpDef, newest `since` not above the model's opset.

An OpDef answers three questions about a node: the shapes of its outputs (`infer`), its
value when every input is a constant (`evaluate`, numpy, used by constant folding), and the
GPU dispatches that compute it (`build`). Ops with no `build` are fold-only: exporters emit
them on shapes (Shape, Gather, Cast...), and they must fold away before the GPU sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..graph import Node
from ..layout import IMAGE, Layout, element_size, logical_strides, storage, to_physical

ShapeFn = Callable[[Node, list["Value"], int], list[tuple[int, ...]]]
# the constant inputs, in order (None where an optional input is empty)
EvalFn = Callable[[Node, list[Any], int], list[np.ndarray]]
BuildFn = Callable[[Node, "BuildContext"], list["Dispatch"]]
BindingKind = Literal["in", "out", "const"]


class NotSupported(Exception):
    """An op variant the engine cannot run (attribute value, dtype, rank): names the reason."""


@dataclass
class Value:
    """What is known about a tensor when a node is specialised."""

    shape: tuple[int, ...]
    const: np.ndarray | None = None
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    layout: Layout = IMAGE  # how it lies in its GPU buffer (set by passes.layouts)


@dataclass
class Binding:
    kind: BindingKind
    ref: str  # tensor name or constant key
    offset: int = 0  # bytes
    size: int | None = None  # bytes; None = the whole tensor / constant
    uniform: bool = False


@dataclass
class Dispatch:
    template: str
    variables: dict[str, Any]
    bindings: list[Binding]
    grid: tuple[int, int, int]
    label: str = ""
    flops: float = 0.0
    variant: str = ""  # which of an op's kernel variants this is (conv: "direct", ...)


@dataclass
class OpDef:
    op_type: str
    since: int
    infer: ShapeFn
    evaluate: EvalFn | None = None
    build: BuildFn | None = None
    const_inputs: tuple[int, ...] = ()
    domain: str = ""
    any_layout: bool = False  # its kernels read and write tensors in either layout
    # of its GPU outputs (None: float32; a tuple: one per output); bool is stored as 0.0 / 1.0,
    # an integer as its float value (TopK's indices)
    out_dtype: np.dtype | tuple[np.dtype, ...] | None = None

    def output_dtype(self, k: int) -> np.dtype:
        d = self.out_dtype
        if isinstance(d, tuple):
            return d[k] if k < len(d) else np.dtype(np.float32)
        return np.dtype(np.float32) if d is None else d


_REGISTRY: dict[tuple[str, str], list[OpDef]] = {}


def register(
    op_type: str | list[str],
    *,
    infer: ShapeFn,
    evaluate: EvalFn | None = None,
    build: BuildFn | None = None,
    since: int = 1,
    const_inputs: tuple[int, ...] = (),
    domain: str = "",
    any_layout: bool = False,
    out_dtype: np.dtype | tuple[np.dtype, ...] | None = None,
) -> None:
    """Add an op version. A second registration of the same (domain, op, since) is refused,
    naming both: the registry is filled by import side effects, and a silent overwrite would
    make which kernel runs depend on import order."""
    for op in [op_type] if isinstance(op_type, str) else op_type:
        defs = _REGISTRY.setdefault((domain, op), [])
        new = OpDef(op, since, infer, evaluate, build, const_inputs, domain, any_layout, out_dtype)
        for old in defs:
            if old.since == since:
                raise ValueError(
                    f"op {domain or 'ai.onnx'}::{op} since opset {since} is registered twice: "
                    f"by {_origin(old)} and by {_origin(new)}"
                )
        defs.append(new)
        defs.sort(key=lambda d: d.since)


def _origin(d: OpDef) -> str:
    fn = d.build or d.evaluate or d.infer
    return f"{fn.__module__}.{fn.__qualname__}"


def lookup(op_type: str, opset: int, domain: str = "") -> OpDef | None:
    domain = "" if domain == "ai.onnx" else domain
    best = None
    for d in _REGISTRY.get((domain, op_type), []):
        if d.since <= opset:
            best = d
    return best


def registered_ops() -> dict[str, list[int]]:
    return {op: [d.since for d in defs] for (_, op), defs in sorted(_REGISTRY.items())}


def gpu_ops() -> list[str]:
    return sorted(op for (_, op), defs in _REGISTRY.items() if any(d.build for d in defs))


class BuildContext:
    """Shapes, constants and device limits a kernel builder may look at while building."""

    def __init__(
        self,
        values: dict[str, Value],
        limits: dict[str, int],
        precision: str,
        chooser: Any = None,
    ) -> None:
        self.values = values
        self.limits = limits
        self.precision = precision
        self.scalar, self.dtype = storage(precision)  # how tensors are stored (f32 or f16)
        self.esize = element_size(precision)
        self.consts: dict[str, np.ndarray] = {}
        self.aliases: dict[str, str] = {}
        # picks between an op's kernel variants (infer.ops.choice.Chooser; None: the rules),
        # and what it picked, by node name
        self.chooser = chooser
        self.choices: dict[str, Any] = {}

    def shape(self, name: str) -> tuple[int, ...]:
        return self.values[name].shape

    def layout(self, name: str) -> Layout:
        return self.values[name].layout

    def strides(self, name: str) -> list[int]:
        """Element stride of each logical axis of the tensor in its buffer (its layout)."""
        v = self.values[name]
        return logical_strides(v.shape, v.layout)

    def alias(self, name: str, base: str) -> None:
        """`name` is `base`'s buffer read with another shape (a Reshape of a row-major tensor):
        no dispatch, one buffer (runtime.plan_buffers)."""
        self.aliases[name] = self.aliases.get(base, base)

    def data_binding(self, name: str, key: str) -> Binding:
        """A data input: a GPU tensor, or a constant uploaded in its layout under `key`."""
        v = self.values[name]
        if v.const is None:
            return Binding("in", name)
        arr = np.asarray(v.const, np.float32)
        phys: np.ndarray = to_physical(arr, v.layout).ravel().astype(self.dtype)
        return Binding("const", self.add_const(key, phys))

    def const(self, name: str) -> np.ndarray | None:
        if not name:
            return None
        v = self.values.get(name)
        return None if v is None else v.const

    def require_const(self, name: str, what: str) -> np.ndarray:
        """A constant input the kernel bakes in, or NotSupported naming it."""
        arr = self.const(name)
        if arr is None:
            raise NotSupported(f"{what} must be a constant")
        return arr

    def add_const(self, key: str, array: np.ndarray) -> str:
        """Register a packed constant (weights, params) for upload; returns its key."""
        arr = np.ascontiguousarray(array)
        if arr.dtype not in (np.float32, np.float16, np.uint32, np.int32):
            arr = arr.astype(np.float32)
        if arr.nbytes % 16:
            pad = (16 - arr.nbytes % 16) // arr.itemsize
            arr = np.concatenate([arr.ravel(), np.zeros(pad, arr.dtype)])
        self.consts[key] = arr
        return key


def attr_ints(node: Node, key: str, default: list[int] | None = None) -> list[int]:
    v = node.attrs.get(key, default)
    return [int(x) for x in v] if v is not None else []

"""`infer.load` and `Model`: the engine's public face."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx

from .caps import DEFAULT, Caps
from .compile import Program, specialise
from .device import Device, get_device
from .errors import ModelError, UnsupportedModelError
from .graph import Graph, ValueInfo, from_onnx, load_proto
from .kernel_choice import chooser_for
from .layout import ROWS, Layout
from .ops import lookup
from .ops.choice import Choice, Chooser, Trial
from .ops.registry import Value
from .runtime import ConstantStore, Executable

log = logging.getLogger(__name__)

_MAX_CACHED_SHAPES = 4
_gpu_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="framesmith-gpu")

Progress = Callable[[str, int, int], None]
"""`Model.prepare`'s report of how far it is, as (stage, done, total), from its own thread:
"kernels" as each conv's kernel is chosen (timed, on a machine that has not measured it: the
long part, tens of seconds on lavapipe), "compiling" as the kernels are built, "warming"
while they run once on the side device (where the driver compiles then), "ready". A service
shows it to the viewers who watch a cheap mode meanwhile."""


class _Counted:
    """A chooser that reports each conv's choice to a `Progress` (N: the graph's convs)."""

    def __init__(self, inner: Chooser, progress: Progress, total: int) -> None:
        self.inner, self.progress, self.total, self.done = inner, progress, total, 0

    def __call__(
        self, key: str, candidates: list[str], rule: str, trial: Callable[[str], Trial]
    ) -> Choice:
        self.progress("kernels", self.done, self.total)
        choice = self.inner(key, candidates, rule, trial)
        self.done = min(self.total, self.done + 1)
        return choice


def _shader_cache_off() -> bool:
    """Whether Mesa's on-disk shader cache is switched off (as Mesa reads its variable)."""
    value = os.environ.get("MESA_SHADER_CACHE_DISABLE", "").strip().lower()
    return value in ("1", "true", "yes", "y")


def _arity_problem(op_type: str, domain: str, opset: int, ins: int, outs: int) -> str:
    """Why a node's input or output count breaks its ONNX schema ("" when it does not): a
    kernel binds what the node names, so an extra input or output would reach the GPU as a
    binding its shader never declared."""
    if domain not in ("", "ai.onnx"):
        return ""
    try:
        schema = onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return ""
    if not schema.min_input <= ins <= schema.max_input:
        return f"takes {schema.min_input}..{schema.max_input} inputs, has {ins}"
    if not schema.min_output <= outs <= schema.max_output:
        return f"makes {schema.min_output}..{schema.max_output} outputs, has {outs}"
    return ""


def static_check(graph: Graph) -> None:
    """Refuse op types the engine does not know, and nodes whose input or output count their
    op does not allow, before any device is asked for."""
    problems = [
        (n.op_type, n.name, "")
        for n in graph.nodes
        if lookup(n.op_type, graph.opset, n.domain) is None
    ]
    problems += [
        (n.op_type, n.name, why)
        for n in graph.nodes
        if (why := _arity_problem(n.op_type, n.domain, graph.opset, len(n.inputs), len(n.outputs)))
    ]
    if problems:
        raise UnsupportedModelError(problems, graph.opset)


def const_inputs(graph: Graph) -> set[str]:
    """Graph inputs whose values (not just shapes) shape the computation."""
    names = {vi.name for vi in graph.inputs if not np.issubdtype(vi.dtype, np.floating)}
    for n in graph.nodes:
        opdef = lookup(n.op_type, graph.opset, n.domain)
        if opdef is None:
            continue
        for k in opdef.const_inputs:
            if k < len(n.inputs):
                names.add(n.inputs[k])
    return names & {vi.name for vi in graph.inputs}


def _fixed(shape: tuple[int | str | None, ...] | None) -> tuple[int, ...] | None:
    """A declared input shape when every dimension is a number (None: some are dynamic)."""
    if shape is None:
        return None
    dims = [d for d in shape if isinstance(d, int)]
    return tuple(dims) if len(dims) == len(shape) else None


class _ShapeOnly:
    """Stands in for an input array when only its shape matters (float image inputs)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def tobytes(self) -> bytes:
        return b""


def check_input_shape(graph: Graph, vi: ValueInfo, shape: tuple[int, ...]) -> None:
    """An input's shape against the caps and the model's declared rank and fixed dimensions:
    a ModelError naming the input, before anything is specialised (the device's runs and the
    browser export both start here)."""
    graph.caps.check_tensor(f"input {vi.name!r}", shape, np.float32)
    if vi.shape is None:
        return
    if len(vi.shape) != len(shape):
        raise ModelError(
            f"input {vi.name!r} must have rank {len(vi.shape)} "
            f"(shape {list(vi.shape)}), got shape {list(shape)}"
        )
    for k, (want, got) in enumerate(zip(vi.shape, shape, strict=True)):
        if isinstance(want, int) and want > 0 and want != got:
            raise ModelError(
                f"input {vi.name!r} dimension {k} must be {want}, got {got} (shape {list(shape)})"
            )


class Model:
    """A model compiled for the GPU. Specialised (folded, fused, built) once per input shape."""

    def __init__(
        self,
        graph: Graph,
        device: Device,
        precision: str = "fp32",
        token_layout: Layout = ROWS,
        kernels: str | None = None,
    ) -> None:
        """`token_layout`: how tensors that are not images are stored (passes.layouts);
        "image" stores every tensor as an image, for measuring what row-major buys.
        `kernels`: how each conv's kernel variant is picked (infer.kernel_choice)."""
        if precision not in ("fp32", "fp16"):
            raise ModelError(f"precision must be 'fp32' or 'fp16', not {precision!r}")
        if precision == "fp16" and "shader-f16" not in device.features:
            # refused rather than silently run in fp32
            raise ModelError(
                f"precision='fp16' needs the shader-f16 feature, which {device.name} lacks"
            )
        self.graph = graph
        self.device = device
        self.precision = precision
        self.token_layout = token_layout
        # picks each conv's kernel variant: measured once per shape, cached on disk
        self.chooser = chooser_for(device, kernels)
        self.inputs = [vi.name for vi in graph.inputs]
        self.outputs = list(graph.outputs)
        self._value_inputs = const_inputs(graph)
        self._consts = ConstantStore(device)
        self._cache: OrderedDict[tuple, Executable] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._side_consts: ConstantStore | None = None  # the weights on device.side()
        self._warmed: set[tuple] = set()  # input shapes run once on the side device
        static_check(graph)
        static = {vi.name: _fixed(vi.shape) for vi in graph.inputs}
        if all(s is not None for s in static.values()) and not self._value_inputs:
            # fully static: find every unsupported op variant now, before any GPU work
            self.program({k: s for k, s in static.items() if s is not None})

    # -- specialisation ---------------------------------------------------------------------

    def _seed(
        self, shapes: dict[str, tuple[int, ...]], arrays: Mapping[str, np.ndarray | _ShapeOnly]
    ) -> dict[str, Value]:
        seed: dict[str, Value] = {}
        for vi in self.graph.inputs:
            if vi.name not in shapes:
                raise ModelError(f"missing input {vi.name!r} (inputs: {self.inputs})")
            shape = tuple(int(d) for d in shapes[vi.name])
            check_input_shape(self.graph, vi, shape)
            given = arrays.get(vi.name) if vi.name in self._value_inputs else None
            const = given if isinstance(given, np.ndarray) else None
            seed[vi.name] = Value(shape, const, vi.dtype)
        return seed

    def program(
        self,
        shapes: dict[str, tuple[int, ...]],
        arrays: Mapping[str, np.ndarray | _ShapeOnly] | None = None,
        *,
        measure: bool = True,
        aside: bool = False,
        progress: Progress | None = None,
    ) -> Program:
        """The folded, fused dispatch list for these input shapes. The first time a conv
        shape is seen, its kernel variants may be timed on the device (infer.kernel_choice);
        `program.kernel_choices` says what was picked and how. `measure=False`: nothing is
        timed (cached choices, the nearest size class measured, else the rule). `aside`:
        timed on the side device (see `prepare`'s `warm`)."""
        chooser = self.chooser if measure else self.chooser.untimed()
        if aside:
            chooser = chooser.on(self.device.side())
        convs = sum(1 for n in self.graph.nodes if n.op_type == "Conv")
        program = specialise(
            self.graph,
            self._seed(shapes, arrays or {}),
            self.device.limits,
            self.precision,
            self.token_layout,
            chooser if progress is None else _Counted(chooser, progress, convs),
        )
        if progress is not None:
            progress("kernels", convs, convs)
        return program

    def prepare(
        self,
        shapes: dict[str, tuple[int, ...]] | tuple[int, ...],
        *,
        measure: bool = True,
        warm: bool = False,
        progress: Progress | None = None,
    ) -> Executable:
        """The model compiled for these input shapes, for callers that drive the GPU themselves.

        The returned Executable exposes `tensor_buffer(name)`, `shape(name)`,
        `encode_pass(compute_pass)` and `encode(encoder)`: a video pipeline writes the input
        tensor with its own shader, records the model in its own command buffer and reads
        the output tensor, with no copy through the CPU.

        `measure=False` for a caller whose own frames are running on the device while this
        compiles (a new size mid-stream): no kernel is timed then, since timing would hold
        the device's queue for seconds and the frames would skew it; convs take the choice
        measured for their nearest size class, else the rule.

        `warm=True` for the same caller compiling in the background: where the driver makes
        machine code at a kernel's first run, on the queue (lavapipe: 7-20 s for a new model,
        every frame behind it waiting), the model is first run once on a side device with a
        queue of its own; that fills Mesa's shader cache, and the first run here then loads
        the code from it (0.3 s measured); convs timed for this size are timed there too.
        Where the cache is off (MESA_SHADER_CACHE_DISABLE) the kernels are still timed there
        but not warmed (the serving device would compile them again); where the driver
        compiles when the pipeline is made, nothing is done aside. Nor where every kernel
        is compiled already: the kernels read the frame's size from uniforms, so a model that
        ran at one size has the machine code for every other (a kernel variant chosen anew
        for the new size class is the exception).

        `progress`: told how far it is (`Progress`), for a caller showing it.
        """
        if not isinstance(shapes, dict):
            shapes = {self.inputs[0]: tuple(shapes)}
        if self._value_inputs:
            raise ModelError(
                f"inputs {sorted(self._value_inputs)} shape the computation by value: use run()"
            )
        aside = warm and self.device.compiles_at_first_dispatch
        exe = self.executable(
            {k: _ShapeOnly(tuple(v)) for k, v in shapes.items()}, measure, aside, progress
        )
        if aside and exe.new_pipelines and not _shader_cache_off():
            # nothing to warm when every kernel was compiled (and run) at another size
            self._warm(exe.program, progress)
        if progress is not None:
            progress("ready", 1, 1)
        return exe

    def _warm(self, program: Program, progress: Progress | None = None) -> None:
        side = self.device.side()
        with self._cache_lock:
            if self._side_consts is None or self._side_consts.device is not side:
                self._side_consts = ConstantStore(side)
            consts = self._side_consts
        shapes = tuple(sorted((n, program.values[n].shape) for n in program.gpu_inputs))
        key = (shapes, tuple(sorted(c.kernel for c in program.kernel_choices.values())))
        if key in self._warmed:
            return
        if progress is not None:
            progress("warming", 0, 1)
        inputs = {n: np.zeros(program.values[n].shape, np.float32) for n in program.gpu_inputs}
        Executable(side, program, consts).run(inputs)
        if len(self._warmed) > 1024:  # a source changing size without end: start over
            self._warmed.clear()
        self._warmed.add(key)

    def executable(
        self,
        arrays: Mapping[str, np.ndarray | _ShapeOnly],
        measure: bool = True,
        aside: bool = False,
        progress: Progress | None = None,
    ) -> Executable:
        shapes = {k: v.shape for k, v in arrays.items()}
        key = tuple(sorted((k, tuple(s)) for k, s in shapes.items())) + tuple(
            (k, arrays[k].tobytes()) for k in sorted(self._value_inputs) if k in arrays
        )
        with self._cache_lock:
            exe = self._cache.get(key)
            if exe is not None:
                self._cache.move_to_end(key)
                return exe
        # compiled outside the lock: a caller compiling the next size in the background (a
        # service changing its input scale) must not hold up one running a compiled size
        program = self.program(shapes, arrays, measure=measure, aside=aside, progress=progress)
        if progress is not None:
            progress("compiling", 0, 1)
        exe = Executable(self.device, program, self._consts)
        with self._cache_lock:
            exe = self._cache.setdefault(key, exe)
            self._cache.move_to_end(key)
            while len(self._cache) > _MAX_CACHED_SHAPES:
                self._cache.popitem(last=False)
        return exe

    # -- running ----------------------------------------------------------------------------

    def _normalise(self, x: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not isinstance(x, dict):
            if len(self.inputs) != 1:
                raise ModelError(f"model has inputs {self.inputs}: pass a dict")
            x = {self.inputs[0]: x}
        unknown = set(x) - set(self.inputs)
        if unknown:
            raise ModelError(f"unknown input(s) {sorted(unknown)}; model inputs: {self.inputs}")
        out = {}
        for vi in self.graph.inputs:
            if vi.name not in x:
                raise ModelError(f"missing input {vi.name!r} (inputs: {self.inputs})")
            arr = np.asarray(x[vi.name])
            if vi.name in self._value_inputs:
                out[vi.name] = arr
            elif not np.issubdtype(arr.dtype, np.floating):
                raise ModelError(f"input {vi.name!r} must be a float array, got {arr.dtype}")
            else:
                # asarray, not ascontiguousarray: that one turns a 0-d scalar into shape (1,)
                out[vi.name] = np.asarray(arr, dtype=np.float32, order="C")
        return out

    def _finish(self, exe: Executable, arrays: dict, results: dict) -> np.ndarray | dict:
        out = {}
        values = exe.program.values
        for name in self.outputs:
            if name in results:
                out[name] = results[name]
            elif name in arrays:
                out[name] = arrays[name]
            elif name in exe.program.graph.constants:
                out[name] = np.asarray(exe.program.graph.constants[name])
            elif name in values and 0 in values[name].shape:  # empty: nothing to compute
                out[name] = np.zeros(values[name].shape, values[name].dtype)
            else:
                raise ModelError(f"output {name!r} was not computed")
        return out[self.outputs[0]] if len(out) == 1 else out

    def run(self, x: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """Run on an NCHW float32 array (or dict of named inputs); blocks until done."""
        arrays = self._normalise(x)
        exe = self.executable(arrays)
        return self._finish(exe, arrays, exe.run(arrays))

    def intermediates(
        self, x: np.ndarray | dict[str, np.ndarray], names: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run once and read back every tensor the GPU computes (or only `names`).

        The tensors are those of the program `run` executes, after folding and fusion: a
        Conv with a fused Relu is one tensor (the activated one), and tensors that were folded
        away or fused into another kernel do not exist. Keys come in the order the dispatches
        write them, so the last key is the model's (first) output.

        The requested tensors become outputs of a separate, uncached Executable: the buffer
        planner keeps an output alive to the end, so no later dispatch reuses its memory and
        each read-back value is the one its producer wrote. Costs one buffer per tensor.
        """
        import dataclasses

        arrays = self._normalise(x)
        program = self.program({k: v.shape for k, v in arrays.items()}, arrays)
        produced: list[str] = []
        for d in program.dispatches:
            for b in d.bindings:
                if b.kind == "out" and b.ref not in produced:
                    produced.append(b.ref)
        if names is None:
            names = produced
        else:
            unknown = [n for n in names if n not in produced]
            if unknown:
                raise ModelError(
                    f"no GPU tensor(s) {unknown} in this model after fusion; "
                    f"computed tensors: {produced}"
                )
        graph = program.graph.copy()
        graph.outputs = list(dict.fromkeys([*program.graph.outputs, *names]))
        exe = Executable(self.device, dataclasses.replace(program, graph=graph), self._consts)
        results = exe.run(arrays)
        return {n: results[n] for n in names}

    async def run_async(
        self, x: np.ndarray | dict[str, np.ndarray]
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Like `run`, but the GPU work and the wait for it happen on the GPU worker thread."""
        return await asyncio.get_running_loop().run_in_executor(_gpu_thread, self.run, x)

    def __repr__(self) -> str:
        return f"<Model inputs={self.inputs} outputs={self.outputs} on {self.device.name}>"


def load(
    model: str | Path | onnx.ModelProto,
    *,
    precision: str = "fp32",
    adapter: int | None = None,
    caps: Caps = DEFAULT,
    kernels: str | None = None,
) -> Model:
    """Load an ONNX model for the GPU. Raises UnsupportedModelError / ModelError, nothing else;
    a model over `caps` (file, node, weight or tensor sizes: infer/caps.py) is a ModelError.
    `kernels` says how conv kernel variants are chosen (infer.kernel_choice): "measure"
    (the default, or $FRAMESMITH_KERNELS), "rules", or a variant name to force."""
    graph = from_onnx(load_proto(model, caps), caps)
    static_check(graph)  # unknown op types fail here, before a device is even requested
    return Model(graph, get_device(adapter), precision, kernels=kernels)

"""A model compiled for a browser's WebGPU, with no device: the plan, the WGSL, the weights.

The same compiler that runs a model on wgpu makes the bundle (compile.specialise builds the
dispatches, runtime.plan_buffers pools the tensors, wgsl.render writes the kernels in the
browser's dialect), so a browser runs exactly the kernels the server runs; only the JavaScript
that binds and dispatches them (infer/web/runtime.js) is new. Nothing here asks for a GPU: the
limits and features a kernel builder sees come from a `Target`, by default a browser's
default WebGPU limits, which any WebGPU adapter grants.

A bundle is made for the input shapes it is given (a few, each its own plan): kernels bake
their sizes in as constants, so a browser asked for another shape refuses it by name rather
than compiling a plan it does not have.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .. import wgsl
from ..caps import DEFAULT, Caps
from ..compile import Program, specialise
from ..errors import ModelError
from ..graph import Graph, from_onnx, load_proto
from ..layout import buffer_bytes, element_size, physical_shape, storage
from ..model import Model, check_input_shape, const_inputs, static_check
from ..ops.choice import Choice, Trial
from ..ops.registry import Value
from ..runtime import plan_buffers

FORMAT = "framesmith-webgpu/1"

# The WebGPU specification's default limits: what requestDevice() grants on every adapter
# when no limit is asked for, so a bundle compiled against them runs in any WebGPU browser.
# Keys are the engine's (wgpu's) names; `JS_LIMITS` maps them to GPUSupportedLimits' names.
WEBGPU_DEFAULT_LIMITS: dict[str, int] = {
    "max-buffer-size": 256 * 2**20,
    "max-storage-buffer-binding-size": 128 * 2**20,
    "max-uniform-buffer-binding-size": 64 * 2**10,
    "max-compute-workgroup-storage-size": 16 * 2**10,
    "max-compute-invocations-per-workgroup": 256,
    "max-compute-workgroup-size-x": 256,
    "max-compute-workgroup-size-y": 256,
    "max-compute-workgroup-size-z": 64,
    "max-compute-workgroups-per-dimension": 65535,
    "max-storage-buffers-per-shader-stage": 8,
    "max-uniform-buffers-per-shader-stage": 12,
    "max-bindings-per-bind-group": 1000,
    "min-storage-buffer-offset-alignment": 256,
    "min-uniform-buffer-offset-alignment": 256,
}
JS_LIMITS = {
    k: k.split("-")[0] + "".join(w.title() for w in k.split("-")[1:]) for k in WEBGPU_DEFAULT_LIMITS
}
# the engine's subgroup kernels share weights across 8 lanes (infer.ops.conv)
SUBGROUP_LANES = 8
# which variant a subgroup build forces where it applies, in order (infer.ops.conv.VARIANTS)
SUBGROUP_KERNELS = ("winograd2-sg", "direct-sg")


@dataclass(frozen=True)
class Target:
    """What a bundle may assume of the device that runs it: its limits (the engine's names,
    `WEBGPU_DEFAULT_LIMITS` when not given), its features ("subgroups", "shader-f16") and, with
    subgroups, the fewest lanes a subgroup may have there (the browser reports it as
    `adapter.info.subgroupMinSize`). The browser runtime refuses a device short of any of it."""

    limits: Mapping[str, int] = field(default_factory=lambda: dict(WEBGPU_DEFAULT_LIMITS))
    features: frozenset[str] = frozenset()
    subgroup_min_size: int = 0
    name: str = "webgpu-default"

    @classmethod
    def browser(cls, subgroups: bool = False) -> Target:
        """The default WebGPU limits; with `subgroups`, also the subgroups feature and the
        8-lane subgroups the engine's subgroup kernels need."""
        if subgroups:
            return cls(features=frozenset({"subgroups"}), subgroup_min_size=SUBGROUP_LANES,
                       name="webgpu-subgroups")  # fmt: skip
        return cls()

    def builder_limits(self) -> dict[str, int]:
        """The limits dict kernel builders read (`subgroup-size`: 0 without subgroups)."""
        sg = self.subgroup_min_size if "subgroups" in self.features else 0
        return {**WEBGPU_DEFAULT_LIMITS, **self.limits, "subgroup-size": sg}

    def describe(self) -> dict[str, Any]:
        limits = {**WEBGPU_DEFAULT_LIMITS, **self.limits}
        return {
            "name": self.name,
            "features": sorted(self.features),
            "limits": {JS_LIMITS.get(k, k): v for k, v in sorted(limits.items())},
            "subgroupMinSize": self.subgroup_min_size,
        }


class _Preferred:
    """A chooser that never measures: the first of `kernels` that can compute a node, else
    the op's rule. Used for an export, where there is no device to time on."""

    def __init__(self, kernels: Sequence[str]) -> None:
        self.kernels = tuple(kernels)

    def __call__(
        self, key: str, candidates: list[str], rule: str, trial: Callable[[str], Trial]
    ) -> Choice:
        for name in self.kernels:
            if name in candidates:
                return Choice(name, "forced", candidates, key)
        return Choice(rule, "rule", candidates, key)


@dataclass
class WebBundle:
    """An export in memory: `manifest` (JSON), WGSL sources by file name, and the weights."""

    manifest: dict[str, Any]
    shaders: dict[str, str]
    weights: bytes

    def write(self, folder: str | Path) -> Path:
        """Write the bundle: manifest.json, kernels/*.wgsl, weights.bin, runtime.js, index.js."""
        from importlib import resources

        out = Path(folder)
        (out / "kernels").mkdir(parents=True, exist_ok=True)
        for name, source in self.shaders.items():
            (out / name).write_text(source, encoding="utf-8")
        (out / "weights.bin").write_bytes(self.weights)
        (out / "manifest.json").write_text(json.dumps(self.manifest, indent=1), encoding="utf-8")
        runtime = resources.files("infer").joinpath("web", "runtime.js").read_text("utf-8")
        (out / "runtime.js").write_text(runtime, encoding="utf-8")
        (out / "index.js").write_text(_INDEX_JS.format(model=self.manifest["model"]), "utf-8")
        return out


_INDEX_JS = """\
// {model}: exported by `python -m infer export-web` (framesmith). An ES module: no build step.
// const m = await (await import("./index.js")).load(baseUrl, {{device}});
// const {{data, shape}} = await m.run(float32Array, [n, c, h, w]);
import {{ loadBundle }} from "./runtime.js";

export {{ BundleError, WebGPUUnavailable }} from "./runtime.js";

export function load(baseUrl = new URL(".", import.meta.url), options = {{}}) {{
  return loadBundle(baseUrl, options);
}}
"""


def _graph(model: str | Path | onnx.ModelProto | Model | Graph, caps: Caps) -> Graph:
    if isinstance(model, Model):
        return model.graph
    if isinstance(model, Graph):
        return model
    graph = from_onnx(load_proto(model, caps), caps)
    static_check(graph)
    return graph


def _seed(graph: Graph, shape: tuple[int, ...]) -> dict[str, Value]:
    """The input's Value for this shape, checked against the declared one (as Model does)."""
    if len(graph.inputs) != 1:
        names = [vi.name for vi in graph.inputs]
        raise ModelError(f"a browser bundle takes models with one input; this one has {names}")
    if const_inputs(graph):
        raise ModelError("the model's input shapes the computation by value: not exportable")
    vi = graph.inputs[0]
    if not np.issubdtype(vi.dtype, np.floating):
        raise ModelError(f"input {vi.name!r} is {vi.dtype}, not a float image")
    check_input_shape(graph, vi, tuple(shape))
    return {vi.name: Value(tuple(shape), None, vi.dtype)}


class _Pack:
    """Kernels and constants shared by every plan of a bundle, each stored once."""

    def __init__(self) -> None:
        self.shaders: dict[str, str] = {}  # file name -> WGSL
        self._shader_ids: dict[str, str] = {}  # source digest -> file name
        self.consts: list[dict[str, Any]] = []
        self._const_ids: dict[str, int] = {}
        self._blobs: list[bytes] = []
        self._size = 0

    def shader(self, source: str) -> str:
        digest = wgsl.source_key(source)
        name = self._shader_ids.get(digest)
        if name is None:
            name = self._shader_ids[digest] = f"kernels/k{len(self.shaders):03d}.wgsl"
            self.shaders[name] = source
        return name

    def const(self, key: str, array: np.ndarray) -> int:
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
        raw = data.tobytes()
        digest = hashlib.sha1(raw + str(data.dtype).encode()).hexdigest()
        idx = self._const_ids.get(digest)
        if idx is None:
            idx = self._const_ids[digest] = len(self.consts)
            self.consts.append(
                {"key": key, "offset": self._size, "bytes": len(raw), "dtype": data.dtype.name}
            )
            pad = -len(raw) % 256  # each constant starts 256-aligned in the file
            self._blobs.append(raw + bytes(pad))
            self._size += len(raw) + pad
        return idx

    def weights(self) -> bytes:
        return b"".join(self._blobs)


def _tensor_io(program: Program, name: str, where: dict[str, tuple[int, int]], esize: int) -> dict:
    v = program.values[name]
    return {
        "name": name,
        "shape": list(v.shape),
        "layout": v.layout,
        "physical": list(physical_shape(v.shape, v.layout)),
        "slot": where[name][0],
        "bytes": buffer_bytes(v.shape, esize, v.layout),
    }


def _plan(program: Program, target: Target, pack: _Pack, dialect: str) -> dict[str, Any]:
    """One input shape's plan: pool slots, I/O slots with their layout, and the dispatches."""
    limits = {**WEBGPU_DEFAULT_LIMITS, **target.limits}
    scalar, _ = storage(program.precision)
    esize = element_size(program.precision)
    where = plan_buffers(program)
    sizes: dict[int, int] = {}
    for slot, size in where.values():
        sizes[slot] = max(sizes.get(slot, 0), size)
    for slot, size in sizes.items():
        if size > limits["max-buffer-size"]:
            raise ModelError(
                f"pool buffer {slot} is {size / 2**20:.0f} MiB, over the target's "
                f"{limits['max-buffer-size'] / 2**20:.0f} MiB buffer limit: export a smaller size"
            )
    missing = [o for o in program.graph.outputs if o not in where]
    if missing:
        raise ModelError(f"outputs {missing} are not computed on the GPU: not exportable")
    steps = []
    for d in program.dispatches:
        source = wgsl.render(d.template, {**d.variables, "S": scalar}, dialect=dialect)
        if any(g > limits["max-compute-workgroups-per-dimension"] for g in d.grid):
            raise ModelError(f"{d.label}: grid {d.grid} is over the target's workgroup count")
        bindings = []
        for b in d.bindings:
            if b.kind == "const":
                arr = program.consts[b.ref]
                size = b.size if b.size is not None else arr.nbytes - b.offset
                entry: dict[str, Any] = {"const": pack.const(b.ref, arr)}
            else:
                v = program.values[b.ref]
                size = b.size if b.size is not None else buffer_bytes(v.shape, esize, v.layout)
                entry = {"slot": where[b.ref][0]}
                if size > limits["max-storage-buffer-binding-size"]:
                    raise ModelError(
                        f"{d.label}: tensor {b.ref!r} is {size / 2**20:.0f} MiB, over the "
                        f"target's {limits['max-storage-buffer-binding-size'] / 2**20:.0f} MiB "
                        "storage binding limit: export a smaller size"
                    )
            align = limits["min-storage-buffer-offset-alignment"]
            if b.offset % align:
                raise ModelError(f"{d.label}: binding offset {b.offset} is not {align}-aligned")
            bindings.append({**entry, "offset": b.offset, "size": size})
        steps.append(
            {
                "label": d.label,
                "shader": pack.shader(source),
                "grid": list(d.grid),
                "bindings": bindings,
                "variant": d.variant,
            }
        )
    return {
        "inputs": [_tensor_io(program, n, where, esize) for n in program.gpu_inputs],
        "outputs": [_tensor_io(program, n, where, esize) for n in program.graph.outputs],
        "pool": [sizes[s] for s in sorted(sizes)],
        "steps": steps,
        "kernels": {k: c.kernel for k, c in program.kernel_choices.items()},
        "flops": program.flops,
    }


def export_webgpu(
    model: str | Path | onnx.ModelProto | Model | Graph,
    shape: tuple[int, ...] | Sequence[tuple[int, ...]],
    target: Target | Sequence[Target] | None = None,
    *,
    kernels: Sequence[str] = (),
    caps: Caps = DEFAULT,
    name: str = "",
) -> WebBundle:
    """Compile `model` for a browser at the input shape(s) given (NCHW), for each target in
    order of preference (the browser runtime takes the first its device satisfies). No GPU is
    touched. `kernels`: conv variants to force where they apply (the rule picks elsewhere;
    a subgroup target forces `SUBGROUP_KERNELS` unless told otherwise). fp32 only for now."""
    graph = _graph(model, caps)
    given: list[Any] = [shape] if shape and isinstance(shape[0], int) else list(shape)
    shapes = [tuple(int(d) for d in s) for s in given]
    if not shapes:
        raise ModelError("give at least one input shape")
    targets = (
        [Target()] if target is None else [target] if isinstance(target, Target) else list(target)
    )
    pack = _Pack()
    builds = []
    for t in targets:
        unknown = set(t.features) - {"subgroups"}
        if unknown:
            raise ModelError(f"target features {sorted(unknown)}: only 'subgroups' is supported")
        prefer = tuple(kernels) or (SUBGROUP_KERNELS if "subgroups" in t.features else ())
        plans = []
        for s in shapes:
            program = specialise(
                graph, _seed(graph, s), t.builder_limits(), "fp32", chooser=_Preferred(prefer)
            )
            plans.append(_plan(program, t, pack, "webgpu"))
        builds.append({"target": t.describe(), "plans": plans})
    label = name or (Path(model).stem if isinstance(model, str | Path) else "model")
    manifest = {
        "format": FORMAT,
        "model": label,
        "precision": "fp32",
        "input": graph.inputs[0].name,
        "outputs": list(graph.outputs),
        "builds": builds,
        "constants": pack.consts,
        "weights": "weights.bin",
    }
    return WebBundle(manifest, pack.shaders, pack.weights())

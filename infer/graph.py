"""The engine's own graph IR, imported from ONNX.

Kept deliberately plain (lists of nodes, dicts of constants) so that passes are small
functions over it and nothing depends on onnx protobufs after import.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .bundled import resolve_model
from .caps import DEFAULT, Caps
from .errors import ModelError
from .external import external_tensors, load_external

Dim = int | str | None


@dataclass(eq=False)  # a node is itself: removing one from a list must not compare fields
class Node:
    op_type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


@dataclass
class ValueInfo:
    name: str
    shape: tuple[Dim, ...] | None
    dtype: np.dtype


@dataclass
class Graph:
    nodes: list[Node]
    inputs: list[ValueInfo]
    outputs: list[str]
    constants: dict[str, np.ndarray]
    opset: int
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    caps: Caps = DEFAULT  # what folding may build (infer/caps.py)

    def copy(self) -> Graph:
        g = copy.copy(self)
        g.nodes = [copy.copy(n) for n in self.nodes]
        for n in g.nodes:
            n.inputs = list(n.inputs)
            n.outputs = list(n.outputs)
            n.attrs = dict(n.attrs)
        g.constants = dict(self.constants)
        g.shapes = dict(self.shapes)
        g.outputs = list(self.outputs)
        return g

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs if o}


def _attr_value(a: onnx.AttributeProto) -> Any:
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode() for s in v]
    return v


def _dims(t: onnx.TypeProto) -> tuple[Dim, ...] | None:
    if not t.tensor_type.HasField("shape"):
        return None
    dims: list[Dim] = []
    for d in t.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def load_proto(model: str | Path | onnx.ModelProto, caps: Caps = DEFAULT) -> onnx.ModelProto:
    """The ModelProto of a file (or a bundled model's name), its sizes checked against `caps`
    before each part is read."""
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        path = resolve_model(model)  # a file, else a bundled model's name ("upscale.onnx")
    except FileNotFoundError as e:
        raise ModelError(str(e)) from None
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    caps.check(f"{path.name}'s size", path.stat().st_size, "max_file_bytes")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise ModelError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from e
    load_external(proto, path, caps)
    if not proto.graph.node:
        raise ModelError(f"{path}: ONNX model has an empty graph (is this really an ONNX file?)")
    return proto


def from_onnx(proto: onnx.ModelProto, caps: Caps = DEFAULT) -> Graph:
    """Import an ONNX model. Structural problems are ModelErrors, never protobuf exceptions;
    sizes over `caps` too, before the data is decoded."""
    opset = 0
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            opset = imp.version
    if opset == 0:
        raise ModelError("model declares no default-domain opset")
    unread = external_tensors(proto)
    if unread:  # onnx would read them from the current folder, uncounted
        raise ModelError(
            f"tensor {unread[0].name!r} holds external data that was never loaded: load the "
            "model from its file so the data is measured and read from beside it"
        )
    g = proto.graph
    caps.check("the node count", len(g.node), "max_nodes")
    total = 0
    for init in g.initializer:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type or 1))
        caps.check_tensor(f"initializer {init.name!r}", tuple(init.dims), dtype)
        total += math.prod(init.dims) * dtype.itemsize
    caps.check("the initializers", total, "max_initializer_bytes")
    constants: dict[str, np.ndarray] = {}
    for init in g.initializer:
        try:
            constants[init.name] = numpy_helper.to_array(init)
        except Exception as e:
            raise ModelError(f"initializer {init.name!r} cannot be read: {e}") from e
    for vi in list(g.input) + list(g.output):
        if vi.type.WhichOneof("value") not in (None, "tensor_type"):
            raise ModelError(
                f"{vi.name!r} is of {vi.type.WhichOneof('value')} type: the engine runs "
                "tensors only"
            )
    inputs = [
        ValueInfo(
            vi.name,
            _dims(vi.type),
            np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type or 1)),
        )
        for vi in g.input
        if vi.name not in constants
    ]
    nodes: list[Node] = []
    defined = {vi.name for vi in inputs} | set(constants)
    for i, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{i}"
        attrs = {a.name: _attr_value(a) for a in n.attribute}
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            value = _constant_value(name, attrs)
            caps.check_tensor(f"Constant {name!r}", value.shape, value.dtype)
            constants[n.output[0]] = value
            defined.add(n.output[0])
            continue
        for inp in n.input:
            if inp and inp not in defined:
                raise ModelError(
                    f"node {name!r} ({n.op_type}) reads {inp!r}, which no earlier node or "
                    "input defines (graph not topologically sorted or broken)"
                )
        defined.update(o for o in n.output if o)
        nodes.append(Node(n.op_type, name, list(n.input), list(n.output), attrs, n.domain))
    outputs = [o.name for o in g.output]
    for o in outputs:
        if o not in defined:
            raise ModelError(f"graph output {o!r} is never produced")
    return Graph(nodes, inputs, outputs, constants, opset, caps=caps)


def _constant_value(name: str, attrs: dict[str, Any]) -> np.ndarray:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            v = attrs[key]
            if key == "value":
                return np.asarray(v)
            dtype = np.float32 if "float" in key else np.int64
            return np.asarray(v, dtype=dtype)
    raise ModelError(f"Constant node {name!r} has no supported value attribute ({list(attrs)})")

"""The ONNX backend API (`onnx.backend.base`) over the engine, so onnx's own test suite runs.

    import infer.backend
    rep = infer.backend.prepare(model_proto)       # compile once
    (y,) = rep.run([x])                            # tuple of outputs, graph-output order
    (y,) = infer.backend.run_node(node, [x, w])    # one node, built into a model

Devices: the engine always runs on a wgpu adapter (a real GPU, or Mesa's lavapipe on machines
without one), so it accepts both "CPU" and "GPU" and means the same thing by each: the default
adapter. "GPU:N" (or the `adapter=N` keyword) picks adapter N of `infer.device.list_adapters()`.
Other device names ("CUDA", ...) are not supported. Errors are the engine's own:
`infer.ModelError` / `infer.UnsupportedModelError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnx.checker
from onnx import helper
from onnx.backend.base import Backend, BackendRep, namedtupledict

from .errors import ModelError, UnsupportedModelError
from .graph import from_onnx
from .model import Model, load
from .ops import lookup

_DEVICES = ("CPU", "GPU")


def _parse_device(device: str) -> int | None:
    """The adapter index a device string asks for (None: the default adapter)."""
    kind, _, index = str(device).partition(":")
    if kind.upper() not in _DEVICES:
        raise ModelError(f"device {device!r} is not supported (use one of {list(_DEVICES)})")
    if not index:
        return None
    try:
        return int(index)
    except ValueError as e:
        raise ModelError(f"device {device!r}: adapter index must be an integer") from e


def _declared_dtype(vi: onnx.ValueInfoProto) -> np.dtype | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.elem_type:
        return None
    return np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))


def _raise_unsupported(model: onnx.ModelProto) -> None:
    """Raise UnsupportedModelError if the model uses op types the engine lacks."""
    graph = from_onnx(model)
    problems = [
        (n.op_type, n.name, "")
        for n in graph.nodes
        if lookup(n.op_type, graph.opset, n.domain) is None
    ]
    if problems:
        raise UnsupportedModelError(problems, graph.opset)


class InferBackendRep(BackendRep):
    """A model compiled by the engine; `run` takes a list (graph-input order) or a dict."""

    def __init__(self, model: Model, output_dtypes: list[np.dtype | None]) -> None:
        self.model = model
        self.output_dtypes = output_dtypes

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        names = self.model.inputs
        if isinstance(inputs, Mapping):
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence):
                inputs = [inputs]
            if len(inputs) != len(names):
                raise ModelError(
                    f"model has {len(names)} input(s) {names}, {len(inputs)} value(s) given"
                )
            feeds = dict(zip(names, inputs, strict=True))
        result = self.model.run(feeds)
        if not isinstance(result, dict):
            result = {self.model.outputs[0]: result}
        outs = []
        for name, dtype in zip(self.model.outputs, self.output_dtypes, strict=True):
            arr = np.asarray(result[name])
            is_float = dtype is not None and (dtype.kind == "f" or dtype.name == "bfloat16")
            if dtype is not None and is_float and arr.dtype != dtype:
                # computed in float32 on the GPU; returned in the type the graph declares
                arr = arr.astype(dtype)
            outs.append(arr)
        return namedtupledict("Outputs", self.model.outputs)(*outs)


class InferBackend(Backend):
    """onnx.backend.base.Backend for the engine (see the module docstring for devices)."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> InferBackendRep:
        """Compile `model`; kwargs `precision` ("fp32"/"fp16"), `adapter` and `kernels` (conv
        kernel choice) go to infer.load (`check=False` skips onnx.checker)."""
        adapter = _parse_device(device)
        adapter = kwargs.get("adapter", adapter)
        if kwargs.get("check", True):
            try:
                onnx.checker.check_model(model)
            except onnx.checker.ValidationError as e:
                _raise_unsupported(model)  # unknown ops: say which, like infer.load does
                raise ModelError(f"invalid ONNX model: {e}") from e
        engine_model = load(
            model,
            precision=kwargs.get("precision", "fp32"),
            adapter=adapter,
            kernels=kwargs.get("kernels"),
        )
        declared = {vi.name: _declared_dtype(vi) for vi in model.graph.output}
        return InferBackendRep(engine_model, [declared.get(o) for o in engine_model.outputs])

    @classmethod
    def run_model(
        cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any
    ) -> tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, ...]:
        """Run one node: `inputs` is a list (the node's non-empty inputs, in order) or a dict."""
        opset = int(kwargs.pop("opset_version", onnx.defs.onnx_opset_version()))
        if lookup(node.op_type, opset, node.domain) is None:
            raise UnsupportedModelError([(node.op_type, node.name, "")], opset)
        try:
            # onnx's stub types **kwargs as dicts; the base class takes any keyword values
            super().run_node(node, inputs, device, outputs_info, opset_version=opset)  # type: ignore[arg-type]
        except onnx.checker.ValidationError as e:
            raise ModelError(f"invalid ONNX node: {e}") from e
        names = [i for i in node.input if i]
        if isinstance(inputs, Mapping):
            feeds = {k: np.asarray(inputs[k]) for k in names}
        else:
            if len(inputs) != len(names):
                raise ModelError(
                    f"{node.op_type} node has {len(names)} input(s), {len(inputs)} given"
                )
            feeds = {k: np.asarray(v) for k, v in zip(names, inputs, strict=True)}
        graph_inputs = [
            helper.make_tensor_value_info(
                k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape)
            )
            for k, v in feeds.items()
        ]
        outputs = [o for o in node.output if o]
        graph_outputs = []
        for k, name in enumerate(outputs):
            if outputs_info is not None and k < len(outputs_info):
                dtype, shape = outputs_info[k]
                elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
                graph_outputs.append(helper.make_tensor_value_info(name, elem, list(shape)))
            else:
                graph_outputs.append(
                    helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                )
        graph = helper.make_graph([node], f"{node.op_type}_node", graph_inputs, graph_outputs)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid(node.domain or "", opset)]
        )
        if node.domain not in ("", "ai.onnx"):
            model.opset_import.append(helper.make_opsetid("", onnx.defs.onnx_opset_version()))
        # the node was checked above; the wrapper model may lack output shapes: no model check
        rep = cls.prepare(model, device, **{**kwargs, "check": False})
        return rep.run(feeds)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """True for "CPU" and "GPU" (either means the wgpu adapter the engine runs on)."""
        try:
            _parse_device(device)
        except ModelError:
            return False
        return True


prepare = InferBackend.prepare
run_model = InferBackend.run_model
run_node = InferBackend.run_node
supports_device = InferBackend.supports_device
is_compatible = InferBackend.is_compatible

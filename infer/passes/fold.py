"""Shape inference and constant folding in one walk over the graph.

Exporters compute reshape targets and resize sizes from `Shape` at run time
(Shape -> Gather -> Unsqueeze -> Concat ...). Once the input size is known those chains are
constants: evaluate them with numpy so that the GPU only sees the real work.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError, UnsupportedModelError
from ..graph import Graph, Node
from ..ops import lookup
from ..ops.registry import NotSupported, ShapeFn, Value

# Inputs of which only the shape and type matter: these ops fold even when that input is a
# tensor computed on the GPU (Shape(x) -> Gather -> ... reshape targets from exporters;
# CastLike(constant, x) in onnx's function bodies).
SHAPE_ONLY = {"Shape": 0, "Size": 0, "CastLike": 1}


def _shape_stand_in(v: Value) -> Value:
    """A zero-strided array with the tensor's shape and dtype (no memory), if not constant."""
    if v.const is not None:
        return v
    return Value(v.shape, np.broadcast_to(np.zeros((), v.dtype), v.shape), v.dtype)


def _check_fold_size(graph: Graph, node: Node, infer: ShapeFn, ins: list[Value]) -> None:
    """A fold's outputs against the tensor cap before numpy builds them (a Range, Expand or
    ConstantOfShape can ask for terabytes)."""
    try:
        shapes = infer(node, ins, graph.opset)
    except Exception:  # noqa: BLE001 - no shape without evaluating: the result is checked after
        return
    for name, shape in zip(node.outputs, shapes, strict=False):
        if name:
            dims = tuple(int(d) for d in shape)
            graph.caps.check_tensor(f"{node.op_type} {node.name!r}'s output", dims, np.float32)


def fold_and_infer(graph: Graph, values: dict[str, Value]) -> dict[str, Value]:
    """Fill `values` (seeded with graph inputs) for every tensor; drop folded nodes."""
    for name, arr in graph.constants.items():
        values.setdefault(name, Value(tuple(arr.shape), arr, arr.dtype))
    kept: list[Node] = []
    problems: list[tuple[str, str, str]] = []
    for node in graph.nodes:
        opdef = lookup(node.op_type, graph.opset, node.domain)
        if opdef is None:
            problems.append((node.op_type, node.name, ""))
            continue
        if any(i and i not in values for i in node.inputs):
            continue  # downstream of an earlier problem
        ins = [values[i] if i else Value((0,), None) for i in node.inputs]
        k = SHAPE_ONLY.get(node.op_type, -1) if node.domain in ("", "ai.onnx") else -1
        if 0 <= k < len(ins):
            ins[k] = _shape_stand_in(ins[k])
        present = [v for i, v in zip(node.inputs, ins, strict=True) if i]
        if opdef.evaluate is not None and all(v.const is not None for v in present):
            _check_fold_size(graph, node, opdef.infer, ins)
            try:
                arrays = [v.const if i else None for i, v in zip(node.inputs, ins, strict=True)]
                outs = opdef.evaluate(node, arrays, graph.opset)
            except NotSupported as e:
                problems.append((node.op_type, node.name, str(e)))
                continue
            except Exception as e:
                raise ModelError(
                    f"folding {node.op_type} node {node.name!r} failed: {type(e).__name__}: {e}"
                ) from e
            for name, arr in zip(node.outputs, outs, strict=False):
                if name:
                    arr = np.asarray(arr)
                    graph.caps.check_tensor(
                        f"{node.op_type} {node.name!r}'s output", arr.shape, arr.dtype
                    )
                    values[name] = Value(tuple(arr.shape), arr, arr.dtype)
                    graph.constants[name] = arr
            continue
        if opdef.build is None:
            problems.append((node.op_type, node.name, "needs inputs known before running"))
            continue
        missing = [
            node.inputs[k]
            for k in opdef.const_inputs
            if k < len(node.inputs) and node.inputs[k] and values[node.inputs[k]].const is None
        ]
        if missing:
            problems.append((node.op_type, node.name, f"inputs {missing} must be constant"))
            continue
        try:
            shapes = opdef.infer(node, ins, graph.opset)
        except NotSupported as e:
            problems.append((node.op_type, node.name, str(e)))
            continue
        except Exception as e:
            raise ModelError(
                f"shape inference of {node.op_type} node {node.name!r} failed: "
                f"{type(e).__name__}: {e}"
            ) from e
        for k, (name, shape) in enumerate(zip(node.outputs, shapes, strict=False)):
            if name:
                dtype = opdef.output_dtype(k)
                shape = tuple(int(d) for d in shape)
                graph.caps.check_tensor(f"{node.op_type} {node.name!r}'s output", shape, dtype)
                values[name] = Value(shape, None, dtype)
        kept.append(node)
    if problems:
        raise UnsupportedModelError(problems, graph.opset)
    graph.nodes = kept
    for out in graph.outputs:
        if out not in values:
            raise ModelError(f"graph output {out!r} was not computed")
    return values

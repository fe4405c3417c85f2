"""Which layout (infer.layout) each GPU tensor of a specialised graph is stored in.

- Graph inputs and outputs, and every tensor an image-only kernel reads (Conv, pools, Resize,
  BatchNorm, DepthToSpace...: the registry's ops without `any_layout`), are images.
- Otherwise a tensor follows what made it: products and views (MatMul, Gemm, Einsum, Gather,
  Transpose, Reshape, Squeeze, Unsqueeze, Flatten, Expand, attention) write row-major; ops
  that keep their input's axes (elementwise, Slice, Pad, Concat, Split, normalisations, Reduce
  with keepdims) write an image if one of their GPU inputs is one, else row-major.
- Constants read as data are uploaded row-major, or as images when an image-only op reads
  them.

So a convnet stays all images, the token path of a transformer block is row-major from the
first Reshape after the conv that made it to the Reshape that feeds the next conv, and no
conversion is ever needed: the generic kernels read and write either layout at its strides.
A Reshape (Flatten, Squeeze, Unsqueeze) from a row-major tensor to another is marked a view:
no dispatch, the same buffer (runtime.plan_buffers).

`token_layout="image"` stores everything as images (the engine before row-major tensors), for
measuring what the row-major layout buys.
"""

from __future__ import annotations

from ..graph import Graph, Node
from ..layout import IMAGE, ROWS, Layout
from ..ops import lookup
from ..ops.registry import Value

ROW_MAJOR_PRODUCERS = frozenset(
    {
        "MatMul",
        "Gemm",
        "Einsum",
        "Gather",
        "Transpose",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Expand",
        "Attention",
    }
)
VIEWS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


def _image_only(graph: Graph, node: Node) -> bool:
    opdef = lookup(node.op_type, graph.opset, node.domain)
    return opdef is None or not opdef.any_layout


def assign_layouts(graph: Graph, values: dict[str, Value], token_layout: Layout = ROWS) -> None:
    consumers = graph.consumers()
    outputs = set(graph.outputs)

    def needs_image(name: str) -> bool:
        return name in outputs or any(_image_only(graph, c) for c in consumers.get(name, []))

    for name, v in values.items():
        if v.const is not None:
            v.layout = IMAGE if token_layout == IMAGE or needs_image(name) else ROWS
    for vi in graph.inputs:
        if vi.name in values:
            values[vi.name].layout = IMAGE
    for node in graph.nodes:
        data = [values[i] for i in node.inputs if i and values[i].const is None]
        for out in node.outputs:
            if not out:
                continue
            v = values[out]
            if token_layout == IMAGE or _image_only(graph, node) or needs_image(out):
                v.layout = IMAGE
            elif node.op_type in ROW_MAJOR_PRODUCERS:
                v.layout = ROWS
            else:
                same_rank = [d for d in data if len(d.shape) == len(v.shape)]
                v.layout = IMAGE if any(d.layout == IMAGE for d in same_rank) else ROWS
        if node.op_type in VIEWS and node.outputs[0] not in outputs:
            x, y = values[node.inputs[0]], values[node.outputs[0]]
            if x.const is None and x.layout == ROWS and y.layout == ROWS:
                node.attrs["_view"] = True

"""Specialise a graph for concrete inputs: fold, fuse and build the dispatch list. No GPU here.

The result (a Program) is pure data, so it can be checked, printed and golden-tested without
a device; `runtime.Executable` turns it into pipelines, buffers and bind groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ModelError, UnsupportedModelError
from .graph import Graph
from .layout import ROWS, Layout
from .ops import lookup
from .ops.choice import Choice, Chooser
from .ops.registry import BuildContext, Dispatch, NotSupported, Value
from .passes import assign_layouts, fold_and_infer, fold_views, fuse
from .passes.argreduce import keep_arg_axis


@dataclass
class Program:
    graph: Graph  # after folding and fusion: the nodes that run on the GPU
    values: dict[str, Value]
    dispatches: list[Dispatch]
    consts: dict[str, np.ndarray]
    gpu_inputs: list[str]  # graph inputs read by some dispatch
    precision: str = "fp32"  # tensor storage (infer.layout.storage); kernels compute in f32
    aliases: dict[str, str] = field(default_factory=dict)  # view -> the tensor it reads
    kernel_choices: dict[str, Choice] = field(default_factory=dict)  # by node name

    def root(self, name: str) -> str:
        """The tensor whose buffer holds `name` (itself unless it is a view)."""
        return self.aliases.get(name, name)

    @property
    def flops(self) -> float:
        return sum(d.flops for d in self.dispatches)


def specialise(
    graph: Graph,
    inputs: dict[str, Value],
    limits: dict[str, int],
    precision: str = "fp32",
    token_layout: Layout = ROWS,
    chooser: Chooser | None = None,
) -> Program:
    """Fold, fuse and build. `chooser` picks between an op's kernel variants (it may time
    them on a device: infer.kernel_choice); without one the ops' rules pick."""
    g = graph.copy()
    values = dict(inputs)
    keep_arg_axis(g)
    fold_and_infer(g, values)
    try:
        fuse(g, values, limits)
        assign_layouts(g, values, token_layout)
        fold_views(g, values)
    except Exception as e:
        raise ModelError(f"graph rewriting failed: {type(e).__name__}: {e}") from e
    ctx = BuildContext(values, limits, precision, chooser)
    dispatches: list[Dispatch] = []
    problems: list[tuple[str, str, str]] = []
    for node in g.nodes:
        opdef = lookup(node.op_type, g.opset, node.domain)
        try:
            if opdef is None or opdef.build is None:
                raise NotSupported("no GPU kernel")
            dispatches.extend(opdef.build(node, ctx))
        except NotSupported as e:
            problems.append((node.op_type, node.name, str(e)))
        except Exception as e:
            raise ModelError(
                f"building {node.op_type} node {node.name!r} failed: {type(e).__name__}: {e}"
            ) from e
    if problems:
        raise UnsupportedModelError(problems, g.opset)
    for d in dispatches:  # a kernel that binds a folded tensor as a GPU one gets it uploaded
        for k, b in enumerate(d.bindings):
            if b.kind == "in" and values[b.ref].const is not None:
                d.bindings[k] = ctx.data_binding(b.ref, f"{d.label}/{b.ref}")
    read = {ctx.aliases.get(b.ref, b.ref) for d in dispatches for b in d.bindings if b.kind == "in"}
    gpu_inputs = [name for name in inputs if name in read]
    return Program(
        g, values, dispatches, ctx.consts, gpu_inputs, precision, dict(ctx.aliases), ctx.choices
    )

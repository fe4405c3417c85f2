"""The compiler without a GPU: folding, fusion, kernel choice and the generated WGSL of a few
ops against golden files. Runs on a machine with no adapter at all (the adapter lookup is made
to fail), so such a machine still tests everything up to the driver.

Regenerate after a deliberate kernel change: FRAMESMITH_UPDATE_GOLDEN=1 pytest this file, then
read the diff of tests/infer/golden/ before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from infer import wgsl
from infer.compile import Program, specialise
from infer.graph import from_onnx
from infer.ops.registry import Value

from .onnx_helpers import single_node_model

GOLDEN = Path(__file__).with_name("golden")
# what lavapipe reports; fixed here so the output does not depend on the machine
LIMITS = {
    "max-storage-buffer-binding-size": 128 << 20,
    "max-storage-buffers-per-shader-stage": 8,
    "max-uniform-buffer-binding-size": 65536,
    "max-compute-workgroups-per-dimension": 65535,
    "max-buffer-size": 1 << 30,
}


@pytest.fixture(autouse=True)
def no_adapter(monkeypatch):
    import wgpu

    def refuse(*args, **kwargs):
        raise AssertionError("the compiler asked for a GPU adapter")

    monkeypatch.setattr(wgpu.gpu, "request_adapter_sync", refuse)
    monkeypatch.setattr(wgpu.gpu, "request_adapter_async", refuse)


def _conv_relu():
    rng = np.random.default_rng(1)
    model = single_node_model(
        "Conv",
        {"x": (1, 3, 17, 13)},
        {"w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
         "b": rng.standard_normal(8).astype(np.float32)},
        pads=[1, 1, 1, 1],
    )  # fmt: skip
    relu = model.graph.node.add()
    relu.op_type, relu.name = "Relu", "relu"
    relu.input.append("y0")
    relu.output.append("z")
    model.graph.output[0].name = "z"
    return model, {"x": (1, 3, 17, 13)}


CASES = {
    "conv3x3_relu": _conv_relu,
    "add_broadcast": lambda: (
        single_node_model("Add", {"a": (1, 5, 7, 9), "b": (1, 5, 1, 9)}),
        {"a": (1, 5, 7, 9), "b": (1, 5, 1, 9)},
    ),
    "resize_linear_x2": lambda: (
        single_node_model(
            "Resize",
            {"x": (1, 3, 9, 11)},
            {"scales": np.array([1, 1, 2, 2], np.float32)},
            input_order=["x", "", "scales"],
            mode="linear",
        ),
        {"x": (1, 3, 9, 11)},
    ),
    "depth_to_space": lambda: (
        single_node_model("DepthToSpace", {"x": (1, 12, 5, 7)}, blocksize=2, mode="CRD"),
        {"x": (1, 12, 5, 7)},
    ),
}


def describe(program: Program) -> str:
    """The Program as text: every dispatch, its bindings and grid, and its WGSL."""
    lines = [f"nodes: {[n.op_type for n in program.graph.nodes]}", f"flops: {program.flops:g}"]
    for d in program.dispatches:
        lines.append(f"== {d.label} {d.template} grid={d.grid}")
        for b in d.bindings:
            lines.append(f"  {b.kind} {b.ref} offset={b.offset} size={b.size} uniform={b.uniform}")
        lines.append(wgsl.render(d.template, {**d.variables, "S": "f32"}))
    return "\n".join(lines).rstrip() + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_program_matches_golden(name):
    model, shapes = CASES[name]()
    graph = from_onnx(model)
    program = specialise(graph, {k: Value(s) for k, s in shapes.items()}, LIMITS)
    text = describe(program)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("FRAMESMITH_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    if not path.exists():
        pytest.fail(f"no golden file {path}: run with FRAMESMITH_UPDATE_GOLDEN=1")
    assert text == path.read_text(), f"{name}: the generated program changed (see {path})"


def test_the_relu_is_fused_into_the_conv_store():
    model, shapes = _conv_relu()
    program = specialise(from_onnx(model), {k: Value(s) for k, s in shapes.items()}, LIMITS)
    assert [n.op_type for n in program.graph.nodes] == ["Conv"]
    assert program.graph.nodes[0].attrs["_activation"]["kind"] == "Relu"
    assert len(program.dispatches) == 1

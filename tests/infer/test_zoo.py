"""The models users bring (infer.training.zoo: Real-ESRGAN's RRDBNet x4 and x2, Compact, SPAN,
SwinIR, HAT, SAFMN, Omni-SR, NAFNet), exported with dynamic height and width at opset 17 and
at the newest opset the exporter offers: each loads, and one Model matches onnxruntime at two
sizes; the graph passes did what they are for."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import infer

from .onnx_helpers import reference

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch", reason="the zoo needs torch (the train extra)")

from infer.training.zoo import ARCHS, EXPORT_OPSET, INPUT, newest_opset  # noqa: E402

RTOL = 1e-4
OPSETS = sorted({EXPORT_OPSET, newest_opset()})
CASES = [(name, opset) for name in ARCHS for opset in OPSETS]


def _ids(case: tuple[str, int]) -> str:
    return f"{case[0]}-op{case[1]}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_matches_onnxruntime_at_two_sizes(case, zoo_onnx):
    name, _ = case
    path = zoo_onnx[case]
    model = infer.load(path)
    proto = onnx.load(str(path))
    rng = np.random.default_rng(0)
    for h, w in ARCHS[name].sizes:
        x = rng.random((1, 3, h, w), dtype=np.float32)
        (ref,) = reference(proto, {INPUT: x})
        got = model.run(x)
        assert got.shape == ref.shape, f"{h}x{w}: shape {got.shape} != reference {ref.shape}"
        err = float(np.abs(got - ref).max()) / max(float(np.abs(ref).max()), 1e-6)
        assert err <= RTOL, f"{h}x{w}: max relative error {err:.2e} > {RTOL:.0e}"


def test_newest_opset_is_newer_than_17():
    assert newest_opset() >= 20


# what the graph passes are for, per architecture: op type -> its count in the program
EXPECTED = {
    "rrdb_x2": {"SpaceToDepth": 1, "Transpose": 0, "Reshape": 0},
    "rrdb_x2_basicsr": {"SpaceToDepth": 1, "Transpose": 0, "Reshape": 0},
    "span_x4": {"SiLU": 0, "Sigmoid": 6},  # the SiLUs in the convs; sigmoid(x) - 0.5 stays
    "swinir_x2": {"Attention": 2, "Softmax": 0, "Gather": 0, "Erf": 0},
    "hat_x4": {"Attention": 3, "Softmax": 0, "Erf": 0},
    "safmn_x4": {"LayerNormAxes": 4, "ReduceMean": 0, "Sqrt": 0, "Erf": 0},
    "omnisr_x2": {"Attention": 2, "LayerNormAxes": 6, "Erf": 0},
    "nafnet": {"LayerNormAxes": 10, "ReduceMean": 0, "Sqrt": 0, "Pow": 0},
    "nafnet_sr_x2": {"LayerNormAxes": 4, "ReduceMean": 0},
}


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in EXPECTED], ids=_ids)
def test_graph_passes_fuse_the_blocks(case, zoo_onnx):
    name, _ = case
    h, w = ARCHS[name].sizes[0]
    program = infer.load(zoo_onnx[case]).program({INPUT: (1, 3, h, w)})
    ops = [n.op_type for n in program.graph.nodes]
    got = {op: ops.count(op) for op in EXPECTED[name]}
    assert got == EXPECTED[name], ops
    if name == "span_x4":
        acts = [
            n.attrs["_activation"]["kind"] for n in program.graph.nodes if "_activation" in n.attrs
        ]
        assert acts.count("SiLU") == 12  # two per SPAB, in the convs' stores

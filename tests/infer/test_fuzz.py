"""The engine's error contract under fuzzing: whatever graph it is given, `infer.load` and
`Model.run` either work or raise `infer.ModelError` (`UnsupportedModelError` is one) naming
the problem; no other exception escapes.

Two sources of graphs, both seeded (a failure names its seed and case, so it replays):
- random graphs: a few nodes of random registered op types (and an unknown one), wired to
  random earlier tensors and constants of random shapes and types, with random attributes;
- every zoo model (infer.training.zoo, needs torch) mutated: a node deleted, an attribute or
  an initializer replaced, an input rewired, an op type swapped.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import infer
from infer.ops import registered_ops

pytestmark = pytest.mark.gpu

X_SHAPE = (1, 3, 9, 7)
RANDOM_GRAPHS = 800
MUTANTS_PER_MODEL = 12

OPS = [op for op in registered_ops() if op not in ("LayerNormAxes", "SiLU")] + ["FooBar"]
INT_ATTRS = (
    "axis",
    "keepdims",
    "group",
    "blocksize",
    "transA",
    "transB",
    "fmod",
    "allowzero",
    "upper",
    "to",
    "num_outputs",
    "ceil_mode",
    "noop_with_empty_axes",
)
INTS_ATTRS = ("perm", "axes", "pads", "kernel_shape", "strides", "dilations", "split", "shape")
FLOAT_ATTRS = ("alpha", "beta", "epsilon", "gamma", "min", "max", "value")
STR_ATTRS = {
    "mode": ["constant", "reflect", "edge", "wrap", "DCR", "CRD", "nearest", "linear", "bad"],
    "auto_pad": ["NOTSET", "SAME_UPPER", "VALID", "weird"],
    "equation": ["ij,jk->ik", "bij,bjk->bik", "ii->i", "ij->ji", "i,i", "...ij,jk"],
    "approximate": ["none", "tanh", "erf"],
    "coordinate_transformation_mode": ["half_pixel", "asymmetric", "align_corners"],
}


def _random_array(rng: random.Random) -> np.ndarray:
    rank = rng.randint(0, 4)
    shape = tuple(
        rng.randint(0, 4) if rng.random() < 0.05 else rng.randint(1, 4) for _ in range(rank)
    )
    kind = rng.random()
    if kind < 0.5:
        return np.asarray(
            np.random.default_rng(rng.randint(0, 99)).standard_normal(shape), np.float32
        )
    if kind < 0.9:
        return np.asarray(
            np.random.default_rng(rng.randint(0, 99)).integers(-3, 5, shape), np.int64
        )
    return np.asarray(np.random.default_rng(rng.randint(0, 99)).random(shape) > 0.5)


def _random_attrs(rng: random.Random) -> dict:
    attrs: dict = {}
    for _ in range(rng.randint(0, 3)):
        pick = rng.random()
        if pick < 0.35:
            attrs[rng.choice(INT_ATTRS)] = rng.randint(-3, 4)
        elif pick < 0.7:
            attrs[rng.choice(INTS_ATTRS)] = [rng.randint(-2, 4) for _ in range(rng.randint(0, 5))]
        elif pick < 0.85:
            attrs[rng.choice(FLOAT_ATTRS)] = rng.choice([0.0, 1e-5, 0.5, 2.0, -1.0])
        else:
            key = rng.choice(list(STR_ATTRS))
            attrs[key] = rng.choice(STR_ATTRS[key])
    return attrs


def _attribute(key: str, value: object) -> onnx.AttributeProto:
    if isinstance(value, list) and not value:
        return helper.make_attribute(key, value, attr_type=onnx.AttributeProto.INTS)
    return helper.make_attribute(key, value)


def random_model(seed: int) -> onnx.ModelProto:
    rng = random.Random(seed)
    tensors = ["x"]
    inits = []
    nodes = []
    for k in range(rng.randint(1, 4)):
        op = rng.choice(OPS)
        inputs = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.6:
                inputs.append(rng.choice(tensors))
            else:
                name = f"c{k}_{len(inits)}"
                inits.append(numpy_helper.from_array(_random_array(rng), name))
                inputs.append(name)
        outputs = [f"t{k}_{j}" for j in range(1 if rng.random() < 0.85 else rng.randint(2, 3))]
        node = helper.make_node(op, inputs, outputs, name=f"n{k}")
        node.attribute.extend(_attribute(key, v) for key, v in _random_attrs(rng).items())
        nodes.append(node)
        tensors += outputs
    graph = helper.make_graph(
        nodes,
        f"fuzz{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X_SHAPE))],
        [helper.make_tensor_value_info(tensors[-1], TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", rng.choice([11, 13, 17, 20]))]
    )
    model.ir_version = 9
    return model


def run_contract(model: onnx.ModelProto, x: np.ndarray) -> str:
    """'ok', or the ModelError's type name; anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = infer.load(model)
            out = m.run(x)
        except infer.ModelError as e:
            assert str(e), "a ModelError with no message"
            return type(e).__name__
    assert isinstance(out, np.ndarray | dict)
    return "ok"


@pytest.mark.parametrize("block", range(8))
def test_random_graphs_raise_only_model_errors(block):
    outcomes: dict[str, int] = {}
    per = RANDOM_GRAPHS // 8
    x = np.random.default_rng(0).standard_normal(X_SHAPE).astype(np.float32)
    for seed in range(block * per, (block + 1) * per):
        model = random_model(seed)
        try:
            outcome = run_contract(model, x)
        except Exception as e:  # noqa: BLE001 -- the failure to report, with its seed
            pytest.fail(
                f"seed {seed}: {type(e).__name__}: {e}\n{onnx.helper.printable_graph(model.graph)}"
            )
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert sum(outcomes.values()) == per


# ---- mutated zoo models ---------------------------------------------------------------------


def mutate(model: onnx.ModelProto, seed: int) -> tuple[onnx.ModelProto, str]:
    rng = random.Random(seed)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    kind = rng.choice(["delete", "attr", "init", "rewire", "optype"])
    k = rng.randrange(len(g.node))
    node = g.node[k]
    if kind == "delete":
        out = node.output[0]
        src = node.input[0] if node.input else g.input[0].name
        del g.node[k]
        for n in g.node:
            for j, i in enumerate(n.input):
                if i == out:
                    n.input[j] = src
        for o in g.output:
            if o.name == out:
                o.name = src
    elif kind == "attr":
        attrs = _random_attrs(rng) or {"axis": rng.randint(-3, 4)}
        for key, value in attrs.items():
            for j, a in enumerate(node.attribute):
                if a.name == key:
                    del node.attribute[j]
                    break
            node.attribute.append(_attribute(key, value))
    elif kind == "init" and g.initializer:
        j = rng.randrange(len(g.initializer))
        name = g.initializer[j].name
        g.initializer[j].CopyFrom(numpy_helper.from_array(_random_array(rng), name))
    elif kind == "rewire" and node.input:
        names = [i for n in g.node[:k] for i in n.output] + [g.input[0].name]
        node.input[rng.randrange(len(node.input))] = rng.choice(names)
    else:
        node.op_type = rng.choice(OPS)
    return m, f"{kind} at node {node.name!r}"


ZOO_CASES = [
    (name, s)
    for name in ("rrdb_x4", "rrdb_x2", "rrdb_x2_basicsr", "srvgg_x4", "span_x4", "swinir_x2",
                 "hat_x4", "safmn_x4", "omnisr_x2", "nafnet", "nafnet_sr_x2")
    for s in range(MUTANTS_PER_MODEL)
]  # fmt: skip


@pytest.mark.parametrize("name", sorted({n for n, _ in ZOO_CASES}))
def test_mutated_zoo_models_raise_only_model_errors(name, zoo_onnx):
    from infer.training.zoo import ARCHS, EXPORT_OPSET

    model = onnx.load(str(zoo_onnx[(name, EXPORT_OPSET)]))
    h, w = ARCHS[name].sizes[0]
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    assert run_contract(model, x) == "ok"  # the unmutated model runs
    for seed in range(MUTANTS_PER_MODEL):
        mutant, what = mutate(model, seed)
        try:
            run_contract(mutant, x)
        except Exception as e:  # noqa: BLE001 -- the failure to report, with its seed
            pytest.fail(f"{name} mutant {seed} ({what}): {type(e).__name__}: {e}")

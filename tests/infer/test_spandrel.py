"""spandrel's whole architecture registry (the loader chaiNNer and ComfyUI use), tried as a
user would: every network class at small widths with random weights, exported by torch at
opset 17 with dynamic height and width, loaded by the engine and compared with onnxruntime.

The walk keeps the table in docs/models.md: `FRAMESMITH_UPDATE_DOCS=1 pytest -m slow
tests/infer/test_spandrel.py` rewrites it; without that the committed table is the
expectation, and an architecture it says passes must still pass."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.train]
pytest.importorskip("torch", reason="needs torch (the train extra)")
if importlib.util.find_spec("spandrel") is None:  # imported through the walk's torchvision guard
    pytest.skip("needs spandrel (the dev extra)", allow_module_level=True)

from infer.training.zoo import spandrel_walk as walk  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"
PER_ARCH_S = 150  # one architecture's build, export, load and comparison


@pytest.fixture(scope="module")
def registry():
    return walk.import_spandrel()


def test_registry_is_walked_whole(registry):
    """Every architecture of the registry yields its network classes (not a list of ours)."""
    found = walk.classes(registry)
    ids = {arch for arch, _ in found}
    assert ids == {str(s.architecture.id) for s in registry.architectures()}
    assert {"PLKSR", "SeemoRe", "ESRGAN", "SwinIR"} <= ids
    assert len(found) >= len(ids)


@pytest.mark.parametrize("arch,cls", [("PLKSR", "RealPLKSR"), ("SeemoRe", "SeemoRe")])
def test_the_two_that_did_not_load(registry, arch, cls):
    """RealPLKSR (ScatterND from its in-place slice assignment) and SeemoRe (TopK routing)
    were the two of the issue's thirteen that did not load."""
    (network,) = [c for a, c in walk.classes(registry) if a == arch and c.__name__ == cls]
    row = walk.try_one(arch, network, registry, PER_ARCH_S)
    assert row.passes, row


def test_table_round_trip(tmp_path):
    rows = [
        walk.Row("A", "Net", True, True, 3e-7),
        walk.Row("B", "Other", True, False, None, reason="declined: Foo | bar"),
    ]
    doc = tmp_path / "models.md"
    doc.write_text("# title\n\ntext\n")
    walk.write_table(doc, rows)
    walk.write_table(doc, rows)  # replaced, not appended twice
    text = doc.read_text()
    assert text.count(walk.TABLE_START) == 1 and text.startswith("# title")
    assert walk.passing_in(text) == {("A", "Net")}


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_whole_registry_against_onnxruntime():
    """Bounded by FRAMESMITH_SPANDREL_BUDGET_S (default 15 minutes of starting classes; the
    whole walk took 21 on this 2-core host): the classes past it are listed as not tried."""
    budget = float(os.environ.get("FRAMESMITH_SPANDREL_BUDGET_S", "900"))
    rows = walk.walk(timeout=PER_ARCH_S, budget_s=budget)
    if os.environ.get("FRAMESMITH_UPDATE_DOCS"):
        walk.write_table(DOC, rows)
    for r in rows:
        assert r.passes or r.reason, r  # every one that does not pass says why
        assert "a bug" not in r.reason, r  # the engine refuses by name, never a bare error
    now = {(r.arch, r.cls) for r in rows if r.passes or r.reason == walk.NOT_TRIED}
    lost = walk.passing_in(DOC.read_text(encoding="utf-8")) - now
    assert not lost, f"passed in docs/models.md, not now: {sorted(lost)}"
    assert np.mean([r.passes for r in rows if r.exports]) > 0.5
    assert sum(r.reason != walk.NOT_TRIED for r in rows) >= 10  # the budget let it walk

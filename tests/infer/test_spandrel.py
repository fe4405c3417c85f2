"""spandrel's whole architecture registry (the loader chaiNNer and ComfyUI use), tried as a
user would: every network class at small widths with random weights, exported by torch,
loaded by the engine and compared with onnxruntime.

The whole walk (57 classes, about 10 minutes here, more with torch.export) is
`python -m infer.training.zoo.spandrel_walk [--dynamo]`: it rewrites the table in
docs/models.md and the op types per class (infer/training/zoo/spandrel_walk.json), and
`FRAMESMITH_SPANDREL_FULL=1` runs it here. The default run checks that the table lists every
class spandrel has, and runs a subset chosen from the record: a fixed cover of every op type
that any passing class's export holds, the two classes of the issue, and two more that
rotate by date (spandrel_table.default_subset)."""

from __future__ import annotations

import datetime
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
THE_TWO = [("PLKSR", "RealPLKSR"), ("SeemoRe", "SeemoRe")]  # did not load before round 6
DYNAMO_ONE = ("Compact", "SRVGGNetCompact")  # torch.export's path, in every default run


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


def test_docs_table_is_the_registry(registry):
    """The table in docs/models.md and the walk's record have one row for every class
    spandrel has, no more: a new spandrel release shows here, not in a full walk."""
    have = sorted((a, c.__name__) for a, c in walk.classes(registry))
    doc = DOC.read_text(encoding="utf-8")
    assert sorted(walk.classes_in(doc)) == have
    rows = walk.read_rows()
    assert sorted((r.arch, r.cls) for r in rows) == have
    assert {(r.arch, r.cls) for r in rows if r.passes} == walk.passing_in(doc)
    for r in rows:
        assert r.passes or r.reason, r  # every one that does not pass says why
        assert r.ops or not r.exports, r


def test_default_subset_covers_every_op_type():
    rows = walk.read_rows()
    subset = walk.default_subset(rows, extra=0)
    every = set().union(*(r.ops for r in rows if r.passes))
    assert set().union(*(r.ops for r in subset)) == every
    assert len(subset) < sum(r.passes for r in rows) / 2  # a subset worth having
    assert {"Conv", "MatMul", "Softmax", "ScatterND", "TopK", "ArgMin"} <= every


def test_default_subset_is_fixed_and_rotates_by_date():
    rows = walk.read_rows()
    day = datetime.date(2026, 12, 8)
    base = walk.default_subset(rows, extra=0)
    one = walk.default_subset(rows, extra=2, day=day)
    assert one == walk.default_subset(rows, extra=2, day=day)
    assert one[: len(base)] == base and len(one) == len(base) + 2
    days = [day + datetime.timedelta(d) for d in range(7)]
    week = {(r.arch, r.cls) for d in days for r in walk.default_subset(rows, 2, d)[len(base) :]}
    assert len(week) >= 8  # a week's runs walk further than one run


def test_table_round_trip(tmp_path):
    rows = [
        walk.Row("A", "Net", True, True, 3e-7, dynamo="ok 2.0e-07", dynamo_error=2e-7),
        walk.Row("B", "Other", True, False, None, reason="declined: Foo | bar"),
    ]
    doc = tmp_path / "models.md"
    doc.write_text("# title\n\ntext\n")
    walk.write_table(doc, rows)
    walk.write_table(doc, rows)  # replaced, not appended twice
    text = doc.read_text()
    assert text.count(walk.TABLE_START) == 1 and text.startswith("# title")
    assert walk.passing_in(text) == {("A", "Net")}
    assert walk.classes_in(text) == [("A", "Net"), ("B", "Other")]
    record = tmp_path / "walk.json"
    walk.write_ops(rows, record)
    assert walk.read_rows(record) == rows


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_subset_against_onnxruntime():
    """The default subset, in one child process (torch, spandrel and the device start once):
    each class still matches onnxruntime, and the torch.export file of one class too."""
    chosen = walk.default_subset(walk.read_rows())
    pairs = list(dict.fromkeys([*THE_TWO, *((r.arch, r.cls) for r in chosen)]))
    rows = walk.run_group(pairs, PER_ARCH_S, dynamo={DYNAMO_ONE})
    failed = [r for r in rows if not r.passes]
    assert not failed, failed
    (dyn,) = [r for r in rows if (r.arch, r.cls) == DYNAMO_ONE] or walk.run_group(
        [DYNAMO_ONE], PER_ARCH_S, dynamo={DYNAMO_ONE}
    )
    assert dyn.dynamo_passes, dyn.dynamo


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.skipif(
    not os.environ.get("FRAMESMITH_SPANDREL_FULL"),
    reason="the full walk: FRAMESMITH_SPANDREL_FULL=1",
)
def test_whole_registry_against_onnxruntime():
    """Every class: what docs/models.md says passes still passes."""
    rows = walk.walk(timeout=PER_ARCH_S, dynamo=bool(os.environ.get("FRAMESMITH_SPANDREL_DYNAMO")))
    for r in rows:
        assert r.passes or r.reason, r
        assert "a bug" not in r.reason, r  # the engine refuses by name, never a bare error
    lost = walk.passing_in(DOC.read_text(encoding="utf-8")) - {
        (r.arch, r.cls) for r in rows if r.passes
    }
    assert not lost, f"passed in docs/models.md, not now: {sorted(lost)}"
    assert np.mean([r.passes for r in rows if r.exports]) > 0.5

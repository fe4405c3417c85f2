"""The conformance figure: every node test of onnx's backend suite run through `infer.backend`,
counted as pass, wrong (a result outside the test's tolerance), unsupported (the engine
refused it with a ModelError, naming why) or error (any other exception: an engine bug).

tests/infer/test_onnx_backend.py runs the ops the engine claims, with the reasons for every
variant it excludes; this counts the whole suite, claimed or not, so that the figure in the
README says how much of ONNX the engine runs, not how much of what it chose to run.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

STATUSES = ("pass", "wrong", "unsupported", "error")


def _op_of(case: Any, ops: list[str]) -> str:
    """The op a node test is about: its graph's only node, else the longest ONNX op name its
    test name starts with (test_reduce_l2_..._expanded is about ReduceL2)."""
    nodes = case.model.graph.node
    if len(nodes) == 1:
        return str(nodes[0].op_type)
    name = case.name.removeprefix("test_").lower().replace("_", "")
    for op in ops:
        if name.startswith(op.lower()):
            return op
    return str(nodes[-1].op_type) if nodes else "?"


def run_case(case: Any) -> tuple[str, str]:
    """(status, detail) of one onnx node test case."""
    import onnx.backend.test.runner as runner

    import infer
    import infer.backend

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = infer.backend.prepare(case.model)
            for inputs, outputs in case.data_sets:
                got = rep.run(inputs)
                runner.Runner.assert_similar_outputs(
                    outputs, list(got), rtol=case.rtol, atol=case.atol
                )
    except infer.ModelError as e:
        return "unsupported", str(e).splitlines()[-1].strip()[:200]
    except AssertionError as e:
        return "wrong", " ".join(str(e).split())[:200]
    except Exception as e:  # noqa: BLE001 -- counted and named: the figure is what's asked
        return "error", f"{type(e).__name__}: {e}"[:200]
    return "pass", ""


def run_conformance(
    pattern: str | None = None, progress: Callable[[str], object] | None = None
) -> dict[str, Any]:
    import onnx
    from onnx.backend.test.loader import load_model_tests

    ops = sorted({s.name for s in onnx.defs.get_all_schemas()}, key=len, reverse=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnx's case generators overflow casts on purpose
        cases = load_model_tests(kind="node")
    rows = []
    for case in cases:
        if pattern and not re.search(pattern, case.name):
            continue
        status, detail = run_case(case)
        rows.append(
            {"name": case.name, "op": _op_of(case, ops), "status": status, "detail": detail}
        )
        if progress is not None:
            progress(f"{status:11s} {case.name} {detail}")
    counts = Counter(r["status"] for r in rows)
    by_op: dict[str, Counter] = {}
    for r in rows:
        by_op.setdefault(r["op"], Counter())[r["status"]] += 1
    ops_all = sum(1 for c in by_op.values() if c["pass"] == sum(c.values()))
    ops_some = sum(1 for c in by_op.values() if c["pass"])
    return {
        "kind": "conformance",
        "cases": len(rows),
        "counts": {s: counts.get(s, 0) for s in STATUSES},
        "ops": len(by_op),
        "ops_all_pass": ops_all,
        "ops_some_pass": ops_some,
        "by_op": {op: dict(c) for op, c in sorted(by_op.items())},
        "rows": rows,
    }


def summary(result: dict[str, Any]) -> str:
    c = result["counts"]
    share = c["pass"] / max(result["cases"], 1)
    return (
        f"{c['pass']} of {result['cases']} onnx node tests pass ({share:.0%}); "
        f"{c['unsupported']} refused by name, {c['wrong']} wrong, {c['error']} errors; "
        f"{result['ops_all_pass']} of {result['ops']} ops pass every test, "
        f"{result['ops_some_pass']} at least one"
    )


def worst_ops(result: dict[str, Any], status: str, top: int = 15) -> list[tuple[str, int]]:
    counts = [(op, c.get(status, 0)) for op, c in result["by_op"].items()]
    return sorted((x for x in counts if x[1]), key=lambda x: (-x[1], x[0]))[:top]

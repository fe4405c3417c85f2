"""Choosing between an op's kernel variants: the rule's pick, or a chooser that measures.

An op builder lists the variants that can compute a node (each with its own `can_apply`),
names the one its rule prefers, and calls `choose`. With no chooser in the BuildContext (a
compile with no device: golden tests, `Model.program` callers that only look) the rule
decides; a Model passes `infer.kernel_choice.MeasuringChooser`, which times each candidate
built on its own (a Trial) on the device and caches the winner on disk. The choice made is
recorded per node, for `python -m infer check` and the per-layer profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .registry import BuildContext, Dispatch, Value

# "nearest": a choice measured for the same op at another output size class, used where
# timing was not allowed (infer.kernel_choice, mode "cached")
HOW = ("only", "rule", "forced", "measured", "cached", "nearest")


@dataclass
class Trial:
    """One candidate built alone: its dispatches, the constants and the tensors they bind."""

    dispatches: list[Dispatch]
    consts: dict[str, np.ndarray]
    values: dict[str, Value]
    precision: str = "fp32"


@dataclass
class Choice:
    kernel: str
    how: str  # one of HOW
    candidates: list[str]
    key: str = ""  # what the choice depends on (shapes, attributes, precision)
    ms: dict[str, float] = field(default_factory=dict)  # measured time per candidate


class Chooser(Protocol):
    def __call__(
        self, key: str, candidates: list[str], rule: str, trial: Callable[[str], Trial]
    ) -> Choice: ...


def choose(
    ctx: BuildContext,
    node_name: str,
    key: str,
    candidates: list[str],
    rule: str,
    trial_build: Callable[[str, BuildContext], list[Dispatch]],
    trial_values: dict[str, Value] | None = None,
) -> str:
    """The variant to build for this node (one of `candidates`), recorded in ctx.choices.
    A chooser times `trial_build(name, ctx)`, which may bind tensors of its own (a crop of
    the real ones) whose shapes are in `trial_values`."""
    if rule not in candidates:
        raise ValueError(f"rule picked {rule!r}, not one of the candidates {candidates}")
    if len(candidates) == 1:
        choice = Choice(rule, "only", candidates, key)
    elif ctx.chooser is None:
        choice = Choice(rule, "rule", candidates, key)
    else:

        def trial(name: str) -> Trial:
            scratch = BuildContext(
                {**ctx.values, **(trial_values or {})}, ctx.limits, ctx.precision
            )
            dispatches = trial_build(name, scratch)
            tensors = {b.ref for d in dispatches for b in d.bindings if b.kind != "const"}
            values = {t: scratch.values[t] for t in tensors}
            return Trial(dispatches, scratch.consts, values, ctx.precision)

        choice = ctx.chooser(key, candidates, rule, trial)
        if choice.kernel not in candidates:
            raise ValueError(f"chooser picked {choice.kernel!r}, not one of {candidates}")
    ctx.choices[node_name] = choice
    return choice.kernel

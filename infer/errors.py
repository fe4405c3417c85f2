"""Errors raised by the engine: callers catch these, never a bare exception from deep inside."""

from __future__ import annotations


class ModelError(Exception):
    """The model file or graph is malformed, or cannot be run with the given inputs."""


class UnsupportedModelError(ModelError):
    """The model uses ops (or op variants) the engine cannot run.

    Raised before any GPU work, listing every offending op so the user sees the whole problem
    at once instead of one op per attempt.
    """

    def __init__(self, problems: list[tuple[str, str, str]], opset: int) -> None:
        self.problems = problems  # (op_type, node name, reason)
        self.opset = opset
        by_type: dict[str, list[str]] = {}
        for op_type, name, reason in problems:
            by_type.setdefault(op_type, []).append(
                f"{name or '<unnamed>'}" + (f" ({reason})" if reason else "")
            )
        lines = [f"  {op}: {', '.join(nodes)}" for op, nodes in sorted(by_type.items())]
        super().__init__(
            f"model (opset {opset}) uses {len(by_type)} unsupported op type(s):\n"
            + "\n".join(lines)
        )

    @property
    def op_types(self) -> list[str]:
        return sorted({p[0] for p in self.problems})

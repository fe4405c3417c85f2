"""Benchmarks: the frame pipeline sequential vs pipelined (`bench-pipeline`), and the service
end to end per resolution (`bench`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_result(result: dict[str, Any], json_path: str | None, plot: bool) -> None:
    """A bench's JSON at `json_path` (nothing without one) and, with `plot`, its figures
    beside it; each path printed."""
    if not json_path:
        return
    path = Path(json_path)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    if plot:
        from ..plots import plot_result

        for png in plot_result(path):
            print(f"wrote {png}")

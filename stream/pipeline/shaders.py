"""The pipeline's own WGSL (shaders/colour/): the colour passes around the model.

Rendered with the engine's conventions (WGSL-safe delimiters, StrictUndefined: a missing
variable is an error, not an empty string) but through this loader, so `stream` depends on
`infer` only through its public API. `S` is the scalar type the model stores tensors in (f32,
or f16 at fp16 precision, which needs `enable f16;`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import jinja2

FOLDER = "colour"


class _Loader(jinja2.BaseLoader):
    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = resources.files("shaders").joinpath(FOLDER, template)
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        return path.read_text(encoding="utf-8"), str(path), lambda: True


_env = jinja2.Environment(
    loader=_Loader(),
    undefined=jinja2.StrictUndefined,
    block_start_string="{$",
    block_end_string="$}",
    variable_start_string="{{",
    variable_end_string="}}",
    comment_start_string="{#",
    comment_end_string="#}",
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _f32(v: float) -> str:
    """A WGSL f32 literal (always with a point or exponent)."""
    text = repr(float(v))
    if text in ("inf", "-inf", "nan"):
        raise ValueError(f"cannot write {text} as a WGSL literal")
    return text if ("." in text or "e" in text) else text + ".0"


_env.filters["f32"] = _f32


def render(template: str, variables: dict[str, Any]) -> str:
    variables = {"S": "f32", **variables}
    source = _env.get_template(template).render(**variables)
    return "enable f16;\n" + source if variables["S"] == "f16" else source

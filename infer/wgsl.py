"""WGSL templates of the engine's kernels: loaded from `shaders/ops/`, filled in with jinja2.

Templates use WGSL-safe delimiters (`{{ x }}` for values, `{$ ... $}` for blocks) and
StrictUndefined, so a missing variable is an error rather than an empty string. Compiled
pipelines are cached by the rendered source: the same kernel with the same constants is
compiled once per device.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib import resources

import jinja2


class _ShaderLoader(jinja2.BaseLoader):
    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = resources.files("shaders").joinpath("ops", template)
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        source = path.read_text(encoding="utf-8")
        return source, str(path), lambda: True


_env = jinja2.Environment(
    loader=_ShaderLoader(),
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


def _wgsl_value(v: object) -> str:
    """Render a Python constant as a WGSL literal."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v}"
    if isinstance(v, float):
        r = repr(float(v))
        if r in ("inf", "-inf", "nan"):
            raise ValueError(f"cannot render {r} as a WGSL literal")
        return r if ("." in r or "e" in r) else r + ".0"
    raise TypeError(f"no WGSL literal for {type(v).__name__}")


def _f32(v: float | str) -> str:
    if isinstance(v, str):  # a value read at run time (ops.common.Sizes): a u32 expression
        return f"f32({v})"
    if v == float("inf"):
        return "3.4028234663852886e38"
    if v == float("-inf"):
        return "-3.4028234663852886e38"
    return _wgsl_value(float(v))


def _u32_array(values: Iterable[int]) -> str:
    values = [int(v) for v in values]
    if not values:
        values = [0]
    return f"array<u32, {len(values)}>(" + ", ".join(f"{v}u" for v in values) + ")"


def _i32_array(values: Iterable[int]) -> str:
    values = [int(v) for v in values]
    if not values:
        values = [0]
    return f"array<i32, {len(values)}>(" + ", ".join(f"{v}" for v in values) + ")"


def _u32(v: int | str) -> str:
    """A u32 operand: a literal, or a value read at run time (ops.common.Sizes), which lets
    one template serve both a size baked in and a size passed in."""
    return v if isinstance(v, str) else f"{int(v)}u"


def _i32(v: int | str) -> str:
    return f"i32({v})" if isinstance(v, str) else f"{int(v)}"


_env.filters["f32"] = _f32
_env.filters["u"] = _u32
_env.filters["i"] = _i32
_env.filters["u32s"] = _u32_array
_env.filters["i32s"] = _i32_array


DIALECTS = ("naga", "webgpu")
_SUBGROUP_BUILTIN = re.compile(r"\bsubgroup[A-Z_]\w*")


def uses_subgroups(source: str) -> bool:
    """Whether a kernel calls subgroup builtins (subgroupBroadcast, subgroup_invocation_id)."""
    return _SUBGROUP_BUILTIN.search(source) is not None


def render(template: str, variables: dict, dialect: str = "naga") -> str:
    """The template filled in. `S` is the WGSL scalar type tensors are stored in (f32 unless
    the caller says f16; kernels compute in f32 either way), and f16 storage enables the
    extension. `dialect`: "naga" (wgpu-native, which refuses `enable subgroups;` as not yet
    implemented and takes subgroup builtins from the device feature) or "webgpu" (a browser's
    Tint, where a kernel using subgroup builtins must say `enable subgroups;`)."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS}, not {dialect!r}")
    variables = {"S": "f32", **variables}
    source = _env.get_template(template).render(**variables)
    enables = ["f16"] if variables["S"] == "f16" else []
    if dialect == "webgpu" and uses_subgroups(source):
        enables.append("subgroups")
    return "".join(f"enable {e};\n" for e in enables) + source


@lru_cache(maxsize=4096)
def source_key(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()

"""The rules the tree keeps, read from the source (no imports run): modules a reader can hold
in mind, imports that follow the data flow.

- no module over 600 lines;
- no import cycle between modules (imports under `if TYPE_CHECKING:` aside);
- no `_private` name imported from another module;
- `infer` never imports `stream`; the service never imports its tools;
- `stream` reaches `infer` only through its public names (or `infer.tools`, for tools).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("infer", "stream", "shaders")
MAX_LINES = 600
# what stream may import from the engine: its public API, and the tools for stream's tools
INFER_PUBLIC = {"infer", "infer.bundled", "infer.tools.benchmark", "infer.tools.plots"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> list[tuple[str, list[str], bool]]:
    """(module imported, names imported from it, only for type checking) of one module."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, list[str], bool]] = []

    def visit(nodes: list[ast.stmt], typing_only: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.body, True)
                continue
            for child in ast.walk(node):
                if isinstance(child, ast.Import):
                    out.extend((a.name, [], typing_only) for a in child.names)
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        anchor = package.split(".")
                        anchor = anchor[: len(anchor) - (child.level - 1)]
                        base = ".".join([*anchor, base] if base else anchor)
                    names = [a.name for a in child.names]
                    # `from . import x` imports the module x
                    subs = [n for n in names if f"{base}.{n}" in MODULES]
                    out.extend((f"{base}.{n}", [], typing_only) for n in subs)
                    rest = [n for n in names if n not in subs]
                    if rest:
                        out.append((base, rest, typing_only))

    visit(tree.body, False)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _resolve(target: str) -> str | None:
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_fits_in_a_reader_s_head(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines (at most {MAX_LINES})"


def test_no_import_cycles():
    edges = {
        name: {
            r
            for target, _, typing_only in imps
            if not typing_only and (r := _resolve(target)) and r != name
        }
        for name, imps in GRAPH.items()
    }
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    for name in edges:
        edges[name] = {t for t in edges[name] if not t.startswith(name + ".")}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if seen.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                walk(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(edges):
        if node not in seen:
            walk(node)


def test_no_private_name_crosses_a_module_boundary():
    bad = [
        f"{name} imports {n} from {target}"
        for name, imps in GRAPH.items()
        for target, names, _ in imps
        for n in names
        if n.startswith("_") and not n.startswith("__") and _resolve(target) != name
    ]
    assert not bad, "\n".join(bad)


def test_the_engine_never_imports_the_service():
    bad = [
        f"{name} imports {target}"
        for name, imps in GRAPH.items()
        if name.startswith("infer")
        for target, _, _ in imps
        if target.split(".")[0] == "stream"
    ]
    assert not bad, "\n".join(bad)


def test_the_service_never_imports_its_tools():
    bad = [
        f"{name} imports {target}"
        for name, imps in GRAPH.items()
        if name.startswith("stream") and not name.startswith("stream.tools")
        and name != "stream.__main__"
        for target, _, _ in imps
        if (_resolve(target) or "").startswith("stream.tools")
    ]  # fmt: skip
    assert not bad, "\n".join(bad)


def test_stream_uses_the_engine_through_its_public_api():
    bad = [
        f"{name} imports {target}"
        for name, imps in GRAPH.items()
        if name.startswith("stream")
        for target, _, _ in imps
        if target.split(".")[0] == "infer" and target not in INFER_PUBLIC
    ]
    assert not bad, "\n".join(bad)

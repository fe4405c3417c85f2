"""External tensor data, measured as onnx will read it before any of it is read.

The declared dims say nothing about the bytes: onnx reads `length` bytes from `offset`, or,
with no `length`, everything to the end of the file, and it reads every tensor in the model
(subgraphs, TENSORS attributes, functions), not only the initializers. So the count walks the
same tensors, stats the same files (resolved and confined as onnx confines them), and then
pins each read to the counted bytes, so a file that grows after the check is not read further.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import external_data_helper

from .caps import Caps
from .errors import ModelError

Scope = onnx.GraphProto | onnx.FunctionProto


def onnx_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """The tensors `onnx.load_external_data_for_model` loads (onnx's `_get_all_tensors`,
    1.17 to 1.23): initializers of the graph and of every subgraph, then TENSOR and TENSORS
    attributes at any depth, those of functions' nodes included. Sparse tensors are not among
    them, and onnx leaves them unread."""
    out: list[onnx.TensorProto] = []
    for walk in ("initializers", "attributes"):
        stack: list[Scope] = [model.graph]
        if walk == "attributes":
            stack += reversed(model.functions)
        while stack:
            scope = stack.pop()
            if walk == "initializers" and isinstance(scope, onnx.GraphProto):
                out += scope.initializer
            subgraphs: list[onnx.GraphProto] = []
            for node in scope.node:
                for a in node.attribute:
                    if walk == "attributes":
                        if a.HasField("t"):
                            out.append(a.t)
                        out += a.tensors
                    subgraphs += _subgraphs(a)
            stack += reversed(subgraphs)
    return out


def _subgraphs(a: onnx.AttributeProto) -> Iterator[onnx.GraphProto]:
    if a.type == onnx.AttributeProto.GRAPH:
        yield a.g
    if a.type == onnx.AttributeProto.GRAPHS:
        yield from a.graphs


def external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in onnx_tensors(model) if external_data_helper.uses_external_data(t)]


@dataclass
class _Read:
    tensor: onnx.TensorProto
    offset: int
    length: int


def load_external(model: onnx.ModelProto, path: Path, caps: Caps) -> None:
    """Read the external data of `model` (loaded from `path`) into it, after refusing, with
    the tensors named, any read onnx would make that is out of the file or over
    `caps.max_initializer_bytes` in total."""
    reads = [_measure(t, path) for t in external_tensors(model)]
    total = sum(r.length for r in reads)
    if total > caps.max_initializer_bytes:
        largest = sorted(reads, key=lambda r: -r.length)
        named = ", ".join(f"{_name(r.tensor)} {r.length:,} bytes" for r in largest[:3])
        more = f" and {len(reads) - 3} more" if len(reads) > 3 else ""
        caps.check(f"{path.name}'s external data ({named}{more})", total, "max_initializer_bytes")
    for r in reads:
        _pin(r)
        if not external_data_helper.uses_external_data(r.tensor):
            continue  # an empty read: nothing to open
        try:
            external_data_helper.load_external_data_for_tensor(r.tensor, str(path.parent))
        except Exception as e:  # noqa: BLE001 - onnx's own path checks, a file that shrank
            raise ModelError(
                f"{path}: external data cannot be read for {_name(r.tensor)} "
                f"({type(e).__name__}: {e})"
            ) from None


def _measure(t: onnx.TensorProto, path: Path) -> _Read:
    info = {e.key: e.value for e in t.external_data}  # the last of a repeated key wins, as in onnx

    def bad(why: str) -> ModelError:
        return ModelError(f"{path}: external data cannot be read for {_name(t)}: {why}")

    file = _resolve(path.parent, info.get("location", ""), bad)
    size = file.stat().st_size
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise bad(f"offset {info.get('offset')!r} / length {info.get('length')!r}") from None
    if offset < 0 or (length is not None and length < 0):
        raise bad(f"negative offset {offset} or length {length}")
    if offset > size:
        raise bad(f"offset {offset:,} is past the end of {file.name} ({size:,} bytes)")
    if length is None:
        length = size - offset  # onnx reads to the end of the file
    elif length > size - offset:
        raise bad(
            f"length {length:,} from offset {offset:,} runs past the end of {file.name} "
            f"({size:,} bytes)"
        )
    return _Read(t, offset, length)


def _resolve(folder: Path, location: str, bad: Callable[[str], ModelError]) -> Path:
    """The file onnx opens for `location`, confined as onnx (>= 1.17) confines it: relative,
    inside the model's folder once links are resolved, a regular file, not itself a link."""
    if not location:
        raise bad("no location")
    if os.path.isabs(location):
        raise bad(f"location {location!r} is absolute")
    file = folder / location
    if file.is_symlink():
        raise bad(f"location {location!r} is a symbolic link")
    real = file.resolve()
    if not real.is_relative_to(folder.resolve()):
        raise bad(f"location {location!r} is outside the model's folder")
    if not real.is_file():
        raise bad(f"location {location!r} is not a file")
    return real


def _pin(r: _Read) -> None:
    """Make onnx read exactly the counted bytes: offset and length written out (old onnx reads
    to the end for a length of 0, and the file may have grown since it was measured)."""
    if r.length == 0:
        r.tensor.raw_data = b""
        r.tensor.data_location = onnx.TensorProto.DEFAULT
        del r.tensor.external_data[:]
        return
    kept = [(e.key, e.value) for e in r.tensor.external_data if e.key not in ("offset", "length")]
    del r.tensor.external_data[:]
    for key, value in [*kept, ("offset", str(r.offset)), ("length", str(r.length))]:
        entry = r.tensor.external_data.add()
        entry.key, entry.value = key, value


def _name(t: onnx.TensorProto) -> str:
    return f"tensor {t.name!r}" if t.name else "an unnamed tensor"

"""Caps on what a model may make the engine do, so a hostile file fails fast and by name.

A model is code the server runs: a 50 GB initializer, a million nodes, a Range or Expand that
folds to a terabyte, or an input declared 100000x100000 would otherwise exhaust memory or
time before any error. Each cap is checked where the size is first known (the file's size
before parsing, external data before it is read, the node count and initializer bytes at
import, a folded tensor's shape before it is computed, an input's shape before any GPU work)
and refused with a ModelError naming the cap and the value. The defaults are far above any
upscaler or denoiser; `infer.load(..., caps=Caps(...))` changes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ModelError

GiB = 1 << 30


@dataclass(frozen=True)
class Caps:
    max_file_bytes: int = 2 * GiB  # the .onnx file (protobuf's own limit is 2 GiB)
    max_nodes: int = 100_000
    max_initializer_bytes: int = 4 * GiB  # every weight, external data included
    max_tensor_bytes: int = 2 * GiB  # one declared, folded or input tensor

    def check(self, what: str, value: int, cap: str) -> None:
        limit = getattr(self, cap)
        if value > limit:
            raise ModelError(
                f"{what} is {_size(value, cap)}, over the cap {cap} = {_size(limit, cap)}"
            )

    def check_tensor(self, what: str, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        if any(d < 0 for d in shape):
            raise ModelError(f"{what} has a negative dimension: {list(shape)}")
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > self.max_tensor_bytes:
            raise ModelError(
                f"{what} of shape {list(shape)} would take {_size(nbytes, 'bytes')}, over the cap "
                f"max_tensor_bytes = {_size(self.max_tensor_bytes, 'bytes')}"
            )


DEFAULT = Caps()


def _size(n: int, cap: str) -> str:
    if "bytes" not in cap:
        return f"{n:,}"
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n:,} bytes"

"""Operator registry: importing this package registers every op family, in one place."""

# registration side effects: each module registers its op family
from . import (  # noqa: F401
    blocks,
    conv,
    elementwise,
    fold_only,
    norm,
    pool,
    resize,
    shape,
    slice_pad,
)
from .registry import gpu_ops, lookup, registered_ops

__all__ = ["gpu_ops", "lookup", "registered_ops"]

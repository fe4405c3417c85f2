"""Operator registry: importing this package registers every op family, in one place."""

# registration side effects: each module registers its op family
from . import (  # noqa: F401
    argreduce,
    blocks,
    conv,
    elementwise,
    fold_only,
    indexing,
    matmul,
    norm,
    pool,
    reduce,
    resize,
    scatter_elements,
    shape,
    slice_pad,
    topk,
    unary,
)
from .registry import gpu_ops, lookup, registered_ops

__all__ = ["gpu_ops", "lookup", "registered_ops"]

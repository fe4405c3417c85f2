"""Operator registry: importing this package registers every op family, in one place."""

from . import conv, elementwise, fold_only, norm, pool, resize, shape  # noqa: F401  (registration side effects)
from .registry import gpu_ops, lookup, registered_ops

__all__ = ["gpu_ops", "lookup", "registered_ops"]

"""Graph passes run when a model is specialised for an input shape: fold, then fuse."""

from .fold import fold_and_infer
from .fuse import fuse

__all__ = ["fold_and_infer", "fuse"]

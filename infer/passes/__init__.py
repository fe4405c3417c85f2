"""Graph passes run when a model is specialised for an input shape: fold, fuse, then choose
each tensor's layout."""

from .fold import fold_and_infer
from .fuse import fuse
from .layouts import assign_layouts

__all__ = ["assign_layouts", "fold_and_infer", "fuse"]

"""Graph passes run when a model is specialised for an input shape: fold, fuse, choose each
tensor's layout, then fold strided views into the products."""

from .fold import fold_and_infer
from .fuse import fuse
from .layouts import assign_layouts
from .views import fold_views

__all__ = ["assign_layouts", "fold_and_infer", "fold_views", "fuse"]

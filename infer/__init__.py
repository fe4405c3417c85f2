"""framesmith's inference engine: ONNX models compiled to WGSL compute passes on wgpu."""

from .errors import ModelError, UnsupportedModelError
from .model import Model, load

__all__ = ["Model", "ModelError", "UnsupportedModelError", "load"]

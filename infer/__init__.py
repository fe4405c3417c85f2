"""framesmith's inference engine: ONNX models compiled to WGSL compute passes on wgpu."""

from .caps import Caps
from .device import Device, get_device, list_adapters
from .errors import ModelError, UnsupportedModelError
from .model import Model, load
from .runtime import Executable
from .web import Target, WebBundle, export_webgpu

__all__ = [
    "Caps",
    "Device",
    "Executable",
    "Model",
    "ModelError",
    "Target",
    "UnsupportedModelError",
    "WebBundle",
    "export_webgpu",
    "get_device",
    "list_adapters",
    "load",
]

"""infer models in a browser: a WebGPU bundle (plan, WGSL, weights, an ES module runtime)."""

from .export import WEBGPU_DEFAULT_LIMITS, Target, WebBundle, export_webgpu

__all__ = ["WEBGPU_DEFAULT_LIMITS", "Target", "WebBundle", "export_webgpu"]

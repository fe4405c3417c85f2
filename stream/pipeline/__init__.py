"""The GPU frame pipeline: planes in, colour pass, model, colour pass, planes out."""

from __future__ import annotations

from .frame_pipeline import MODES, FramePipeline
from .plan import PipelineError
from .stats import FrameTiming, PipelineStats

__all__ = ["MODES", "FramePipeline", "FrameTiming", "PipelineError", "PipelineStats"]

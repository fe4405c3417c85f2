"""Models shipped inside the package (infer/models/*.onnx), found by bare file name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_UPSCALER = "upscale.onnx"  # the x2 upscaler a GPU runs when none is named
# ...and the one a CPU device runs (Mesa's lavapipe/llvmpipe, WARP): the default pruned to
# half its width, 0.32x its convolutions' FLOPs. On a 2-core lavapipe host the default took
# ~51 ms a 160x90 pass (the adaptation's floor) against a 33 ms frame, so the service fell
# back to planar scaling for good; the quality each gives is on its card (infer/models/*.md)
CPU_UPSCALER = "upscale-lite.onnx"


def bundled_dir() -> Path:
    return Path(str(resources.files("infer").joinpath("models")))


def bundled_models() -> list[str]:
    d = bundled_dir()
    return sorted(p.name for p in d.glob("*.onnx")) if d.is_dir() else []


def resolve_model(name: str | Path) -> Path:
    """A path as given if it exists, else the bundled model of that name (`upscale.onnx`,
    or `upscale` without the suffix)."""
    path = Path(name)
    if path.exists():
        return path
    candidate = bundled_dir() / path.name
    if not candidate.suffix:
        candidate = candidate.with_suffix(".onnx")
    if candidate.is_file():
        return candidate
    known = ", ".join(bundled_models()) or "none"
    raise FileNotFoundError(
        f"model file {str(name)!r} not found, and no bundled model of that name ({known})"
    )


def default_upscaler(is_cpu: bool) -> str:
    """The bundled upscaler to run when none is named, by the device that will run it (an
    adapter of type CPU gets the light one, when it is bundled)."""
    if is_cpu and (bundled_dir() / CPU_UPSCALER).is_file():
        return CPU_UPSCALER
    return DEFAULT_UPSCALER

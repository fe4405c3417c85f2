"""Models shipped inside the package (infer/models/*.onnx), found by bare file name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


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

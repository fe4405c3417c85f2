"""Models shipped inside the package (infer/models/*.onnx), found by bare file name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_UPSCALER = "upscale.onnx"  # the x2 upscaler serve runs when none is named, on any device
# A lighter x2 upscaler for CPU devices (Mesa's lavapipe/llvmpipe): the default pruned to half
# its width, 0.33x its FLOPs. It is not the CPU default: on held-out images it is +1.32 dB over
# bicubic against the +2.0 dB floor a default must keep (issue 27); `--model upscale-lite.onnx`
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

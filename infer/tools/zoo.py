"""The benchmark zoo: bundled models, the reference architectures and the architectures users
bring, exported on demand.

The architectures are PyTorch modules with seeded random weights in infer.training.zoo (the
reference ones: ESPCN, FSRCNN, SRVGGNetCompact, DnCNN, UNet; the users' ones: Real-ESRGAN's
RRDBNet x4 / x2 and Compact, SPAN, SwinIR, HAT, SAFMN, Omni-SR, NAFNet); they are exported to
ONNX once into a cache folder. That needs torch (the train extra); without it the zoo is the
bundled models alone, and the reason is logged.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from ..bundled import bundled_dir, bundled_models

log = logging.getLogger(__name__)

REFERENCE = ("espcn", "fsrcnn", "srvgg", "dncnn", "unet")


def default_cache() -> Path:
    return Path(tempfile.gettempdir()) / "framesmith-zoo"


def reference_models(
    cache_dir: Path | None = None, names: tuple[str, ...] = REFERENCE
) -> list[Path]:
    try:
        from ..training.zoo import export_reference  # torch: the train extra
    except ImportError as e:
        log.warning("reference architectures not available (%s): zoo = bundled models only", e)
        return []
    cache = Path(cache_dir or default_cache())
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = cache / f"{name}.onnx"
        if not path.is_file():
            log.info("exporting reference architecture %s to %s", name, path)
            export_reference(name, path)
        paths.append(path)
    return paths


def user_models(
    cache_dir: Path | None = None, names: tuple[str, ...] | None = None, opset: int = 17
) -> list[Path]:
    """The users' architectures exported at `opset` (dynamic H and W), as `<name>_op<N>.onnx`."""
    try:
        from ..training.zoo import ARCHS, export  # torch: the train extra
    except ImportError as e:
        log.warning("user architectures not available (%s): not in the zoo", e)
        return []
    cache = Path(cache_dir or default_cache())
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or tuple(ARCHS):
        path = cache / f"{name}_op{opset}.onnx"
        if not path.is_file():
            log.info("exporting %s at opset %d to %s", name, opset, path)
            export(name, path, opset)
        paths.append(path)
    return paths


def zoo_models(cache_dir: Path | None = None) -> list[Path]:
    bundled = [bundled_dir() / n for n in bundled_models()]
    return bundled + reference_models(cache_dir) + user_models(cache_dir)

"""The benchmark zoo: bundled models plus the reference architectures, exported on demand.

The reference architectures (ESPCN, FSRCNN, SRVGGNetCompact, DnCNN, UNet with seeded random
weights) are the PyTorch modules in tests/infer/models.py; they are exported to ONNX once into
a cache folder. That needs torch (the train extra) and a source checkout; without them the zoo
is the bundled models alone, and the reason is logged.
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
        from tests.infer.models import export  # torch, and the repository's tests package
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
            export(name, path)
        paths.append(path)
    return paths


def zoo_models(cache_dir: Path | None = None) -> list[Path]:
    bundled = [bundled_dir() / n for n in bundled_models()]
    return bundled + reference_models(cache_dir)

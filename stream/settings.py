"""TOML settings of the `process` and `soak` commands (configs/process.toml, configs/soak.toml).

Same rules as `serve` (stream/config.py, whose type coercion this reuses): every key has a
default here, a file may set any subset, unknown keys and bad values are refused with the key
named (``process.crf: must be -1 or 0..63, got 99``). Command-line flags override the file:
`defaults_for(parser_args)` turns a loaded section into argparse defaults.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .config import ConfigError, _coerce


@dataclass
class ProcessSettings:
    model: str = "upscale.onnx"  # a file, or a bundled model's name
    mode: str = "model"  # model | bilinear | bicubic | bypass
    scale: int = 2  # scale of the bilinear / bicubic baseline
    codec: str = "h264"  # h264 | hevc | vp9 | av1
    crf: int = -1  # -1: the encoder's default quality
    slots: int = 2  # frames in flight on the GPU
    adapter: int = -1  # GPU adapter index (python -m stream devices); -1: the best one
    progress: bool = True


@dataclass
class SoakSettings:
    url: str = ""  # a running server; empty: start `serve` with serve_config on a free port
    serve_config: str = "configs/serve.toml"
    duration_s: float = 3600.0
    viewers: int = 8  # WHEP viewers held open at once
    churn_s: float = 30.0  # one viewer leaves and a new one joins this often (0: never)
    codec: str = "vp8"
    sample_s: float = 10.0  # how often /api/stats and /metrics are scraped
    max_rss_growth_mb: float = 200.0  # fail if the server's RSS grows more than this
    max_drop_ratio: float = 0.02  # fail if more than this share of frames is dropped
    report: str = "artifacts/soak/report.json"


SECTIONS = {"process": ProcessSettings, "soak": SoakSettings}

_CHECKS: dict[str, Any] = {
    "process.mode": lambda v: v in ("model", "bilinear", "bicubic", "bypass")
    or "must be one of model, bilinear, bicubic, bypass",
    "process.scale": lambda v: 1 <= v <= 8 or "must be 1..8",
    "process.codec": lambda v: v in ("h264", "hevc", "vp9", "av1")
    or "must be one of h264, hevc, vp9, av1",
    "process.crf": lambda v: v == -1 or 0 <= v <= 63 or "must be -1 or 0..63",
    "process.slots": lambda v: 1 <= v <= 8 or "must be 1..8",
    "process.adapter": lambda v: -1 <= v <= 64 or "must be -1 (auto) or an adapter index",
    "soak.url": lambda v: v == "" or v.startswith(("http://", "https://"))
    or "must be empty or an http(s) URL",
    "soak.duration_s": lambda v: 1 <= v <= 7 * 86400 or "must be 1..604800",
    "soak.viewers": lambda v: 1 <= v <= 1000 or "must be 1..1000",
    "soak.churn_s": lambda v: v == 0 or v >= 1 or "must be 0 or >= 1",
    "soak.codec": lambda v: v in ("vp8", "h264") or "must be vp8 or h264",
    "soak.sample_s": lambda v: 1 <= v <= 600 or "must be 1..600",
    "soak.max_rss_growth_mb": lambda v: v > 0 or "must be > 0",
    "soak.max_drop_ratio": lambda v: 0 <= v <= 1 or "must be 0..1",
}


def load(section: str, path: str | Path | None = None) -> Any:
    """The `[section]` settings from `path` (defaults when None), validated."""
    cls = SECTIONS[section]
    obj = cls()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {str(p)!r} not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML: {e}") from None
        unknown = set(data) - {section}
        if unknown:
            raise ConfigError(f"{p}: unknown section [{sorted(unknown)[0]}] (this file holds "
                              f"[{section}] only)")
        values = data.get(section, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{p}: {section} must be a table")
        known = {f.name: f for f in fields(cls)}
        for key, value in values.items():
            full = f"{section}.{key}"
            if key not in known:
                raise ConfigError(f"{p}: unknown key {full!r} (known in [{section}]: "
                                  f"{', '.join(known)})")
            setattr(obj, key, _coerce(full, known[key].type, value))
    for key, check in _CHECKS.items():
        sec, name = key.split(".")
        if sec == section:
            value = getattr(obj, name)
            ok = check(value)
            if ok is not True:
                raise ConfigError(f"{key}: {ok}, got {value!r}")
    return obj


def as_defaults(settings: Any) -> dict[str, Any]:
    """Settings as argparse defaults (-1 "auto" values become None, as the flags expect)."""
    out = asdict(settings)
    for key in ("adapter", "crf"):
        if out.get(key) == -1:
            out[key] = None
    return out

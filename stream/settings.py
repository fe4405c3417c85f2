"""TOML settings of the `process` and `soak` commands (configs/process.toml, configs/soak.toml).

Same rules as `serve` (stream/config.py, whose type coercion this reuses): every key has a
default here, a file may set any subset, unknown keys and bad values are refused with the key
named (``process.crf: must be -1 or 0..63, got 99``). Command-line flags override the file:
`defaults_for(parser_args)` turns a loaded section into argparse defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, apply_section, read_toml


@dataclass
class ProcessSettings:
    model: str = "upscale.onnx"  # a file, or a bundled model's name
    mode: str = "model"  # model | bilinear | bicubic | bypass
    precision: str = "fp32"  # fp32 | fp16 (tensor storage on the GPU)
    scale: int = 2  # scale of the bilinear / bicubic baseline
    codec: str = "h264"  # h264 | hevc | vp9 | av1
    crf: int = -1  # -1: the encoder's default quality
    slots: int = 2  # frames in flight on the GPU
    adapter: int = -1  # GPU adapter index (python -m stream devices); -1: the best one
    progress: bool = True


FAULTS = ("leave", "slow", "lossy", "malformed", "publisher")


@dataclass
class SoakSettings:
    url: str = ""  # a running server; empty: start `serve` with serve_config on a free port
    serve_config: str = "configs/serve.toml"
    duration_s: float = 3600.0
    viewers: int = 8  # WHEP viewers held open at once
    churn_s: float = 30.0  # one viewer leaves abruptly and rejoins this often (0: never)
    rejoin_s: float = 2.0  # how long a viewer that left stays away
    codec: str = "vp8"
    sample_s: float = 1.0  # how often /api/stats and /metrics are scraped
    warmup_s: float = 15.0  # not judged: compiling, first keyframes, allocator warm-up
    # faults, one every fault_every_s in turn ("leave" is the churn above; "publisher" only
    # when the server's source is webrtc)
    faults: list[str] = field(default_factory=lambda: list(FAULTS))
    fault_every_s: float = 20.0
    stall_s: float = 3.0  # "slow": the viewer's reader stalls this long
    loss: float = 0.2  # "lossy": share of RTP packets the viewer loses ...
    loss_s: float = 4.0  # ... for this long
    # a viewer waits this long for a lost packet, then skips and asks for a keyframe (as a
    # browser does; aiortc's own buffer waits for 512 packets: seconds)
    viewer_max_wait_s: float = 0.5
    grace_s: float = 3.0  # after a fault ends its viewer is not judged for this long
    # verdict
    freeze_ms: float = 500.0  # a gap between two frames longer than this is a freeze
    max_gap_s: float = 3.0  # no viewer outside a fault goes longer without a frame
    max_latency_p50_ms: float = 150.0  # glass to glass: born on the server -> decoded
    max_latency_p95_ms: float = 300.0
    max_latency_p99_ms: float = 500.0
    min_fps: float = 24.0  # every viewer's mean frame rate (outside faults)
    max_drop_ratio: float = 0.02  # fail if more than this share of frames is dropped
    max_frozen_ratio: float = 0.01  # share of inter-frame intervals that are freezes
    max_decode_error_ratio: float = 0.01  # decoder errors per frame received
    max_rss_growth_mb: float = 200.0  # fail if the fitted RSS growth over the run is more
    max_rss_mb_per_min: float = 2.0  # growth slopes (least squares after warm-up) ...
    max_gpu_mb_per_min: float = 0.5
    max_fds_per_min: float = 5.0
    max_peers_per_min: float = 1.0  # open RTCPeerConnections
    # the soak's own event loop: when it stalls longer than this, what its viewers saw says
    # more about the client than the server (the run fails, naming the client)
    max_client_lag_s: float = 1.0
    report: str = "artifacts/soak/report.json"
    plots: str = ""  # a folder for the latency plots; empty: none
    browser: bool = False  # add one headless Chromium viewer (the viewer page)


SECTIONS = {"process": ProcessSettings, "soak": SoakSettings}

_CHECKS: dict[str, Any] = {
    "process.mode": lambda v: (
        v in ("model", "bilinear", "bicubic", "bypass")
        or "must be one of model, bilinear, bicubic, bypass"
    ),
    "process.precision": lambda v: v in ("fp32", "fp16") or "must be fp32 or fp16",
    "process.scale": lambda v: 1 <= v <= 8 or "must be 1..8",
    "process.codec": lambda v: (
        v in ("h264", "hevc", "vp9", "av1") or "must be one of h264, hevc, vp9, av1"
    ),
    "process.crf": lambda v: v == -1 or 0 <= v <= 63 or "must be -1 or 0..63",
    "process.slots": lambda v: 1 <= v <= 8 or "must be 1..8",
    "process.adapter": lambda v: -1 <= v <= 64 or "must be -1 (auto) or an adapter index",
    "soak.url": lambda v: (
        v == "" or v.startswith(("http://", "https://")) or "must be empty or an http(s) URL"
    ),
    "soak.duration_s": lambda v: 1 <= v <= 7 * 86400 or "must be 1..604800",
    "soak.viewers": lambda v: 1 <= v <= 1000 or "must be 1..1000",
    "soak.churn_s": lambda v: v == 0 or v >= 1 or "must be 0 or >= 1",
    "soak.codec": lambda v: v in ("vp8", "h264") or "must be vp8 or h264",
    "soak.sample_s": lambda v: 0.2 <= v <= 600 or "must be 0.2..600",
    "soak.rejoin_s": lambda v: 0 <= v <= 600 or "must be 0..600",
    "soak.warmup_s": lambda v: v >= 0 or "must be >= 0",
    "soak.faults": lambda v: all(f in FAULTS for f in v) or f"must name only {', '.join(FAULTS)}",
    "soak.fault_every_s": lambda v: v == 0 or v >= 1 or "must be 0 (no faults) or >= 1",
    "soak.stall_s": lambda v: 0 < v <= 600 or "must be 0..600",
    "soak.loss": lambda v: 0 < v <= 1 or "must be 0..1",
    "soak.loss_s": lambda v: 0 < v <= 600 or "must be 0..600",
    "soak.viewer_max_wait_s": lambda v: 0 < v <= 60 or "must be 0..60",
    "soak.grace_s": lambda v: v >= 0 or "must be >= 0",
    "soak.freeze_ms": lambda v: v > 0 or "must be > 0",
    "soak.max_gap_s": lambda v: v > 0 or "must be > 0",
    "soak.max_latency_p50_ms": lambda v: v > 0 or "must be > 0",
    "soak.max_latency_p95_ms": lambda v: v > 0 or "must be > 0",
    "soak.max_latency_p99_ms": lambda v: v > 0 or "must be > 0",
    "soak.min_fps": lambda v: v >= 0 or "must be >= 0",
    "soak.max_frozen_ratio": lambda v: 0 <= v <= 1 or "must be 0..1",
    "soak.max_decode_error_ratio": lambda v: 0 <= v <= 1 or "must be 0..1",
    "soak.max_rss_mb_per_min": lambda v: v > 0 or "must be > 0",
    "soak.max_gpu_mb_per_min": lambda v: v > 0 or "must be > 0",
    "soak.max_fds_per_min": lambda v: v > 0 or "must be > 0",
    "soak.max_peers_per_min": lambda v: v > 0 or "must be > 0",
    "soak.max_client_lag_s": lambda v: v > 0 or "must be > 0",
    "soak.max_rss_growth_mb": lambda v: v > 0 or "must be > 0",
    "soak.max_drop_ratio": lambda v: 0 <= v <= 1 or "must be 0..1",
}


def load(section: str, path: str | Path | None = None) -> Any:
    """The `[section]` settings from `path` (defaults when None), validated."""
    cls = SECTIONS[section]
    obj = cls()
    if path is not None:
        p = Path(path)
        data = read_toml(p)
        unknown = set(data) - {section}
        if unknown:
            raise ConfigError(
                f"{p}: unknown section [{sorted(unknown)[0]}] (this file holds [{section}] only)"
            )
        values = data.get(section, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{p}: {section} must be a table")
        apply_section(obj, section, values, str(p))
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

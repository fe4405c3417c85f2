"""The soak's settings (configs/soak.toml, section [soak]); flags override the file.

Same rules as `serve` (stream/config.py): every key has a default here, a file may set any
subset, unknown keys and bad values are refused with the key named
(``soak.viewers: must be >= 1, got 0``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ...config import Section, load_section

Fault = Literal["leave", "slow", "lossy", "bandwidth", "malformed", "abuse", "publisher"]
FAULTS: tuple[Fault, ...] = (
    "leave",
    "slow",
    "lossy",
    "bandwidth",
    "malformed",
    "abuse",
    "publisher",
)


class SoakSettings(Section):
    url: str = ""  # a running server; empty: start `serve` with serve_config on a free port
    token: str = ""  # an admin token for the server at `url` (one started here: minted here)
    serve_config: str = "configs/serve.toml"
    duration_s: float = Field(3600.0, ge=1, le=7 * 86400)
    viewers: int = Field(8, ge=1, le=1000)  # WHEP viewers held open at once
    churn_s: float = 30.0  # one viewer leaves abruptly and rejoins this often (0: never)
    rejoin_s: float = Field(2.0, ge=0, le=600)  # how long a viewer that left stays away
    codec: Literal["vp8", "h264"] = "vp8"
    sample_s: float = Field(1.0, ge=0.2, le=600)  # how often /api/stats and /metrics are read
    warmup_s: float = Field(15.0, ge=0)  # not judged: compiling, first keyframes, warm-up
    # faults, one every fault_every_s in turn ("leave" is the churn above; "publisher" only
    # when the server's source is webrtc)
    faults: list[Fault] = Field(default_factory=lambda: list(FAULTS))
    fault_every_s: float = 20.0
    stall_s: float = Field(3.0, gt=0, le=600)  # "slow": the viewer's reader stalls this long
    loss: float = Field(0.2, gt=0, le=1)  # "lossy": share of RTP packets the viewer loses ...
    loss_s: float = Field(4.0, gt=0, le=600)  # ... for this long
    # "bandwidth": a viewer's receive path capped (a token bucket with a 200 ms queue) for
    # bandwidth_s at bandwidth_kbps (0: halfway between the VP8 encode's layers 0-1 and the
    # whole stream, as /api/stats measures them); it must keep bandwidth_min_fps with no gap
    # over bandwidth_max_gap_s, and be back on every layer bandwidth_recovery_s after
    bandwidth_kbps: float = Field(0.0, ge=0)
    bandwidth_s: float = Field(20.0, gt=0, le=3600)
    bandwidth_min_fps: float = Field(7.0, ge=0)
    bandwidth_max_gap_s: float = Field(1.0, gt=0)
    bandwidth_recovery_s: float = Field(15.0, gt=0)
    # a viewer waits this long for a lost packet, then skips and asks for a keyframe (as a
    # browser does; aiortc's own buffer waits for 512 packets: seconds)
    viewer_max_wait_s: float = Field(0.5, gt=0, le=60)
    grace_s: float = Field(3.0, ge=0)  # after a fault ends its viewer is not judged this long
    # verdict
    freeze_ms: float = Field(500.0, gt=0)  # a gap between two frames longer than this
    max_gap_s: float = Field(3.0, gt=0)  # no viewer outside a fault goes longer without one
    max_latency_p50_ms: float = Field(150.0, gt=0)  # glass to glass: born -> decoded
    max_latency_p95_ms: float = Field(300.0, gt=0)
    max_latency_p99_ms: float = Field(500.0, gt=0)
    min_fps: float = Field(24.0, ge=0)  # every viewer's mean frame rate (outside faults)
    max_drop_ratio: float = Field(0.02, ge=0, le=1)  # share of frames dropped
    max_frozen_ratio: float = Field(0.01, ge=0, le=1)  # share of intervals that are freezes
    max_decode_error_ratio: float = Field(0.01, ge=0, le=1)  # decoder errors per frame
    max_rss_growth_mb: float = Field(200.0, gt=0)  # fitted RSS growth over the run
    max_rss_mb_per_min: float = Field(2.0, gt=0)  # growth slopes (least squares) ...
    max_gpu_mb_per_min: float = Field(0.5, gt=0)
    max_fds_per_min: float = Field(5.0, gt=0)
    max_peers_per_min: float = Field(1.0, gt=0)  # open RTCPeerConnections
    # the soak's own event loop: when it stalls longer than this, what its viewers saw says
    # more about the client than the server (the run fails, naming the client)
    max_client_lag_s: float = Field(1.0, gt=0)
    # audio-video sync, judged when the server serves the beep test source ([audio] source =
    # "beep"; skipped otherwise): the |offset| p95 a viewer sees between each beep and its
    # flash, and its drift (a Theil-Sen line over the run). 40 ms: lip sync is detectable from
    # about +45 ms (sound early) / -125 ms (sound late), ITU-R BT.1359; 0.5 ms/min: 30 ms over
    # an hour, no drift the goal would notice
    max_av_offset_ms: float = Field(40.0, gt=0)
    max_av_drift_ms_per_min: float = Field(0.5, gt=0)
    report: str = "artifacts/soak/report.json"
    plots: str = ""  # a folder for the latency plots; empty: none
    browser: bool = False  # add one headless Chromium viewer (the viewer page)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be empty or an http(s) URL")
        return v

    @field_validator("churn_s")
    @classmethod
    def _churn(cls, v: float) -> float:
        if v != 0 and v < 1:
            raise ValueError("must be 0 or >= 1")
        return v

    @field_validator("fault_every_s")
    @classmethod
    def _every(cls, v: float) -> float:
        if v != 0 and v < 1:
            raise ValueError("must be 0 (no faults) or >= 1")
        return v


def load(path: str | Path | None = None) -> SoakSettings:
    return load_section(SoakSettings, "soak", path)

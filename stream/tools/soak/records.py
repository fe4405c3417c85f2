"""What a soak records, typed: one row per decoded frame, per fault, per poll, per check.

The JSON report keeps the shape it always had (plots and older reports read it): each record
becomes a plain object through `as_json()`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FrameRow:
    """One frame a viewer decoded (`t` in seconds since the soak's start)."""

    t: float
    viewer: str
    n: int | None = None  # frame number read from the marker (None: unreadable, misread)
    latency_ms: float | None = None  # born on the server -> decoded here
    send_ms: float | None = None  # handed to the server's RTP sender -> decoded here
    interval_ms: float | None = None  # since this viewer's previous frame
    missed: int = 0  # frame numbers skipped since the previous frame (drops)
    faulted: bool = False  # inside a fault window of this viewer (not judged)
    misread: bool = False  # a marker that passed its check bits but names no recent frame
    resync: bool = False  # a lap of the 16-bit counter guessed wrong before the message
    repeat: bool = False  # the same or an older frame than the previous one
    t_wall: float | None = None  # while its server message has not come yet

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "t_wall"}
        for flag in ("misread", "resync", "repeat"):
            if not out[flag]:
                del out[flag]
        return out


@dataclass
class Fault:
    """One injected fault; its viewer (None: every viewer) is not judged in [t0, t1 + grace]."""

    kind: str
    viewer: str | None
    t0: float
    t1: float
    detail: dict[str, Any] = field(default_factory=dict)  # mode, loss, requests, ...
    skipped: str = ""  # why it was not injected

    @property
    def windowed(self) -> bool:
        """Whether the fault excuses its viewer for a while (a leave does not: the viewer
        that left is gone; and a malformed or abusive burst must not hurt anyone)."""
        return self.t1 > 0 and self.kind not in ("malformed", "abuse", "leave") and not self.skipped

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "viewer": self.viewer, "t0": self.t0}
        out["t1"] = self.t1
        out.update(self.detail)
        if self.skipped:
            out["skipped"] = self.skipped
        return out


@dataclass
class Check:
    """One verdict line: `value` against `limit` (None: no data)."""

    name: str
    value: float | None
    limit: float | None
    ok: bool
    unit: str = ""
    op: str = ""
    detail: Any = None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.detail is None:
            del out["detail"]
        if not self.op:
            del out["op"]
        return out


@dataclass
class Poll:
    """The server's /api/stats and /metrics at one moment (`error` when it did not answer)."""

    t: float
    error: str = ""
    final: bool = False
    api_ms: float | None = None
    rss_mb: float | None = None
    gpu_mb: float | None = None
    fds: int | None = None
    peers: int | None = None
    peer_objects: int | None = None
    threads: int | None = None
    viewers: int | None = None
    queue: int | None = None
    queue_max: int | None = None
    in_flight: int | None = None
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    pipeline_dropped: dict[str, int | None] = field(default_factory=dict)
    encoders: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    # per viewer session: its temporal layer and link figures (stream/bitrate.py)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return getattr(self, key)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.error:
            del out["error"]
        if not self.final:
            del out["final"]
        return out


ENCODER_KEYS = (
    "stream",
    "codec",
    "fps",
    "frames_encoded",
    "dropped",
    "keyframes",
    "encode_ms_mean",
    "subscribers",
    "bitrate",
    "layer_kbps",
)
LINK_KEYS = ("layer", "target_layer", "estimate_kbps", "sent_kbps", "loss", "remb_kbps")


def mb(v: float | None) -> float | None:
    return None if v is None else round(v / (1 << 20), 4)


def poll_from(t: float, stats: dict[str, Any], metrics: dict[str, float], api_ms: float) -> Poll:
    """A poll row from /api/stats (its `process` section already merged with /proc)."""
    proc = stats.get("process") or {}
    pipelines = stats.get("pipelines") or {}
    return Poll(
        t=t,
        api_ms=api_ms,
        rss_mb=mb(proc.get("rss_bytes")),
        gpu_mb=mb(proc.get("gpu_bytes")),
        fds=proc.get("open_fds"),
        peers=proc.get("peer_connections"),
        peer_objects=proc.get("peer_objects"),
        threads=proc.get("threads"),
        viewers=stats.get("viewers"),
        queue=proc.get("viewer_queue_packets"),
        queue_max=proc.get("viewer_queue_max"),
        in_flight=proc.get("pipeline_in_flight"),
        stages={
            name: {k: round(v["mean"], 3) for k, v in p.items() if isinstance(v, dict)}
            for name, p in pipelines.items()
        },
        pipeline_dropped={n: p.get("dropped") for n, p in pipelines.items()},
        encoders=[{k: e.get(k) for k in ENCODER_KEYS} for e in stats.get("encoders") or []],
        source={k: (stats.get("source") or {}).get(k) for k in ("state", "frames", "skipped")},
        metrics=metrics,
        links={
            sid: {k: v.get(k) for k in LINK_KEYS}
            for sid, v in ((stats.get("bandwidth") or {}).get("viewers") or {}).items()
        },
    )

"""Prometheus metrics of the service (prometheus-client, one registry per service)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .pipeline.stats import FrameTiming

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
_STAGES = ("wait_ms", "upload_ms", "submit_ms", "gpu_ms", "readback_ms", "total_ms")

# Service.resources() key -> gauge (what a soak watches for leaks: stream/tools/soak)
_PROCESS = (
    ("rss_bytes", "framesmith_process_resident_memory_bytes", "Resident memory of the server"),
    ("open_fds", "framesmith_process_open_fds", "Open file descriptors of the server"),
    ("gpu_bytes", "framesmith_gpu_memory_bytes", "Bytes in live wgpu buffers and textures"),
    ("peer_connections", "framesmith_peer_connections", "RTCPeerConnections not closed yet"),
    (
        "viewer_queue_packets",
        "framesmith_viewer_queue_packets",
        "Packets waiting in all viewers' send queues",
    ),
    ("pipeline_in_flight", "framesmith_pipeline_in_flight", "Frames on the GPU right now"),
)


class _Live(Collector):
    """Gauges read at scrape time from the running service."""

    def __init__(self, collect: Callable[[], dict]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        live = self._collect()
        g = GaugeMetricFamily("framesmith_viewers", "Connected WHEP viewers")
        g.add_metric([], live.get("viewers", 0))
        yield g
        g = GaugeMetricFamily("framesmith_publishers", "Connected WHIP publishers")
        g.add_metric([], live.get("publishers", 0))
        yield g
        fps = GaugeMetricFamily(
            "framesmith_encoder_fps", "Frames encoded per second", labels=["stream", "codec"]
        )
        enc = GaugeMetricFamily(
            "framesmith_frames_encoded",
            "Frames encoded (once per frame, not per viewer)",
            labels=["stream", "codec"],
        )
        subs = GaugeMetricFamily(
            "framesmith_encoder_subscribers",
            "Viewers and push sinks fed by an encoder",
            labels=["stream", "codec"],
        )
        keys = GaugeMetricFamily(
            "framesmith_keyframe_requests",
            "Viewers' keyframe requests (PLI/FIR, resumes): honoured at once, or coalesced "
            "into one at the end of encoder.min_keyframe_interval_s",
            labels=["stream", "codec", "outcome"],
        )
        for e in live.get("encoders", []):
            labels = [e["stream"], e["codec"]]
            fps.add_metric(labels, e["fps"])
            enc.add_metric(labels, e["frames_encoded"])
            subs.add_metric(labels, e["subscribers"])
            for outcome, n in e.get("keyframe_requests", {}).items():
                keys.add_metric([*labels, outcome], n)
        yield fps
        yield enc
        yield subs
        yield keys
        g = GaugeMetricFamily(
            "framesmith_viewer_packets_dropped",
            "Packets lost by slow viewers (all sessions so far)",
        )
        g.add_metric([], live.get("viewer_dropped", 0))
        yield g
        g = GaugeMetricFamily("framesmith_source_up", "1 when the source delivers frames")
        g.add_metric([], 1 if live.get("source_state") == "live" else 0)
        yield g
        for key, name, doc in _PROCESS:
            value = live.get("process", {}).get(key)
            if value is not None:
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], value)
                yield g
        yield from _push_metrics(live.get("push", []))


# push sinks (stream/sinks/): labelled by the sink's index and kind, never by its URL
_PUSH = (
    ("bitrate_bps", "framesmith_push_bitrate_bps", "Bits per second sent by a push sink (2 s)"),
    ("bytes", "framesmith_push_bytes", "Bytes sent by a push sink"),
    ("packets", "framesmith_push_packets", "Video packets sent by a push sink"),
    ("dropped", "framesmith_push_packets_dropped", "Video packets a push sink could not send"),
    ("reconnects", "framesmith_push_reconnects", "Connection attempts after a push's first"),
    ("queued", "framesmith_push_queue_packets", "Packets waiting in a push sink's queue"),
)
PUSH_STATES = ("connecting", "live", "retrying", "stopped")


def _push_metrics(sinks: list[dict]) -> Iterator[Metric]:
    labels = ["sink", "kind"]
    for key, name, doc in _PUSH:
        g = GaugeMetricFamily(name, doc, labels=labels)
        for s in sinks:
            g.add_metric([str(s["sink"]), s["kind"]], s.get(key, 0))
        yield g
    g = GaugeMetricFamily(
        "framesmith_push_state", "1 for a push sink's current state", labels=[*labels, "state"]
    )
    for s in sinks:
        for state in PUSH_STATES:
            g.add_metric([str(s["sink"]), s["kind"], state], 1 if s["state"] == state else 0)
    yield g


class Metrics:
    def __init__(self, live: Callable[[], dict]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_in = Counter(
            "framesmith_source_frames", "Frames produced by the source", registry=r
        )
        self.frames_processed = Counter(
            "framesmith_frames_processed", "Frames processed on the GPU", ["pipeline"], registry=r
        )
        self.frames_dropped = Counter(
            "framesmith_frames_dropped",
            "Frames dropped by the live pipeline (GPU behind the source)",
            ["pipeline"],
            registry=r,
        )
        self.stage = Histogram(
            "framesmith_stage_seconds",
            "Per-frame time of each pipeline stage",
            ["pipeline", "stage"],
            buckets=_BUCKETS_S,
            registry=r,
        )
        self.encode = Histogram(
            "framesmith_encode_seconds",
            "Per-frame encode time",
            ["codec"],
            buckets=_BUCKETS_S,
            registry=r,
        )
        self.sessions = Counter("framesmith_sessions", "Sessions started", ["kind"], registry=r)
        self.bad_requests = Counter(
            "framesmith_bad_requests",
            "Requests refused with a 4xx",
            ["path", "status"],
            registry=r,
        )
        r.register(_Live(live))

    def record_frame(self, pipeline: str, timing: FrameTiming | None) -> None:
        self.frames_processed.labels(pipeline).inc()
        if timing is None:
            return
        for stage in _STAGES:
            v = getattr(timing, stage)
            if v is not None:
                self.stage.labels(pipeline, stage[:-3]).observe(v / 1000)

    def text(self) -> bytes:
        return generate_latest(self.registry)

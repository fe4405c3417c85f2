"""One viewer's link: what its RTCP says (loss, jitter, round trip, REMB) and the rate it can
take, estimated as libwebrtc's loss-based controller does (draft-ietf-rmcat-gcc-02 section 6:
above 10% loss the rate drops by half the loss, at most once per SETTLE_S; below 2% it grows
8% a second; in between it holds). NACKs count as loss between reports (a report covers
about a second; NACKs over the last half second's packets tell within a round trip).

A REMB is the receiver's delay-based estimate, which by design never says more than 1.5
times what it receives, so it cannot be a ceiling for a viewer on fewer layers (it would
never be let back up). A REMB under 85% of what is sent says queues are building, but
aiortc's estimator (and a browser's on a busy machine) says so too when the receiver's own
CPU is late reading packets: in the CI soak, three aiortc viewers in one loaded process lost
layers that way on a loopback link (7-17% of frames). So a low REMB only sets how far the
rate drops when loss is seen too; loss is the signal. The growth is capped at 1.5 times what
is actually sent, except when the layer selector steps up: the step is the probe (its rate
is let through, and loss soon undoes it if the link cannot take it).

aiortc reads RTCP in RTCRtpSender._handle_rtcp_packet and keeps the figures private (RTT) or
drops them (REMB goes to its own encoder only, which a packet track does not have), so
`observe` wraps that method on the sender instance (stream/webrtc/patches.py checks it).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

from ..temporal import LAYERS, Layer
from . import patches
from .layers import LayerSelector, SelectorSettings

LOSS_HIGH = 0.10
LOSS_LOW = 0.02
GROWTH_PER_S = 1.08
REMB_FRESH_S = 5.0
REMB_CONGESTED = 0.85  # a REMB under this share of what is sent: queues are building
LOSS_RECENT_S = 2.5  # ... which counts only with loss reported this recently
# loss reported this soon after a decrease is mostly from before it took effect (a receiver
# report covers about a second, the layer changes at the next tick and a queue drains)
SETTLE_S = 1.5
RATE_WINDOW_S = 2.0
NACK_WINDOW_S = 0.5  # NACKs over the packets sent in this window: loss long before a report
RTP_PAYLOAD = 1280  # bytes of a frame per RTP packet (aiortc's PACKET_MAX, less headers)


@dataclass
class EstimateBounds:
    start_bps: float
    min_bps: float
    max_bps: float


class LinkEstimate:
    def __init__(self, bounds: EstimateBounds) -> None:
        self.bounds = bounds
        self.rate = bounds.start_bps
        self.loss = 0.0  # the last report's fraction lost
        self.jitter_ms = 0.0
        self.rtt_ms: float | None = None
        self.remb_bps: float | None = None
        self.remb_at = -math.inf
        self.reports = 0
        self.last_report: float | None = None
        self.last_loss = -math.inf  # when a report last said 2% or more
        self.last_decrease = -math.inf

    def report(self, fraction_lost: float, sent_bps: float, now: float) -> None:
        b = self.bounds
        dt = 1.0 if self.last_report is None else min(5.0, max(0.0, now - self.last_report))
        self.last_report = now
        self.reports += 1
        self.loss = fraction_lost
        if fraction_lost >= LOSS_LOW:
            self.lost(fraction_lost, sent_bps, now)
        else:
            cap = max(1.5 * sent_bps, self.rate)  # never grown by a report, but not cut
            self.rate = min(self.rate * GROWTH_PER_S**dt, max(cap, b.min_bps))
        self.rate = min(b.max_bps, max(b.min_bps, self.rate))

    def lost(self, fraction: float, sent_bps: float, now: float) -> None:
        """Loss seen (a receiver report, or NACKs between reports): above LOSS_HIGH the rate
        drops by half of it, at most once per SETTLE_S; any of it ends the quiet time."""
        self.last_loss = now
        if fraction > LOSS_HIGH and now - self.last_decrease >= SETTLE_S:
            base = min(self.rate, sent_bps) if sent_bps > 0 else self.rate
            self.rate = max(self.bounds.min_bps, base * (1 - 0.5 * fraction))
            self.last_decrease = now

    def remb(self, bps: float, sent_bps: float, now: float) -> None:
        self.remb_bps = bps
        self.remb_at = now
        congested = sent_bps > 0 and bps < REMB_CONGESTED * sent_bps
        if (
            congested
            and now - self.last_loss <= LOSS_RECENT_S
            and now - self.last_decrease >= SETTLE_S
            and bps < self.rate
        ):
            self.rate = max(self.bounds.min_bps, bps)
            self.last_decrease = now

    def probe(self, bps: float) -> None:
        """The selector stepped up: let the new layer's rate through."""
        self.rate = min(self.bounds.max_bps, max(self.rate, bps))

    def fresh_remb(self, now: float) -> float | None:
        return self.remb_bps if now - self.remb_at < REMB_FRESH_S else None


class ViewerLink:
    """A viewer track's link: its estimate, its layer selector (VP8 with layers) and what it
    was sent. `tick` runs once a second (stream/bitrate.py) with the encoder's layer rates."""

    def __init__(
        self,
        bounds: EstimateBounds,
        layered: bool,
        settings: SelectorSettings | None = None,
    ) -> None:
        self.estimate = LinkEstimate(bounds)
        self.selector = LayerSelector(settings) if layered else None
        self.sent: collections.deque[tuple[float, int]] = collections.deque()
        self.nacks: collections.deque[tuple[float, int]] = collections.deque()
        self.nacked = 0
        self.layer_bps: list[float] = []  # the encoder's, at the last tick
        self.skipped = 0  # frames of layers this viewer was not sent
        self.history: collections.deque[tuple[float, int, float]] = collections.deque(maxlen=600)

    # -- the packets ------------------------------------------------------------------------

    def forward(self, layer: Layer | None) -> bool:
        if self.selector is None or layer is None:
            return True
        if self.selector.forward(layer):
            return True
        self.skipped += 1
        return False

    def on_sent(self, size: int, now: float) -> None:
        self.sent.append((now, size))
        while self.sent and now - self.sent[0][0] > RATE_WINDOW_S:
            self.sent.popleft()

    def sent_bps(self, now: float) -> float:
        while self.sent and now - self.sent[0][0] > RATE_WINDOW_S:
            self.sent.popleft()
        if not self.sent:
            return 0.0
        span = max(0.5, now - self.sent[0][0])
        return sum(size for _, size in self.sent) * 8 / span

    # -- RTCP -------------------------------------------------------------------------------

    def nack_loss(self, now: float) -> float | None:
        """The share of packets sent in the last NACK_WINDOW_S that were NACKed (None: too
        few sent to tell)."""
        while self.nacks and now - self.nacks[0][0] > NACK_WINDOW_S:
            self.nacks.popleft()
        packets = sum(-(-size // RTP_PAYLOAD) for t, size in self.sent if now - t <= NACK_WINDOW_S)
        if packets < 10:
            return None
        return min(1.0, sum(n for _, n in self.nacks) / packets)

    def on_rtcp(self, packet: Any, ssrc: int, rtt_s: float | None, now: float) -> None:
        e = self.estimate
        if (
            isinstance(packet, RtcpRtpfbPacket)
            and packet.fmt == RTCP_RTPFB_NACK
            and packet.media_ssrc == ssrc
        ):
            self.nacks.append((now, len(packet.lost)))
            self.nacked += len(packet.lost)
            if self.layer_bps and (self.nack_loss(now) or 0.0) > LOSS_HIGH:
                self.tick(self.layer_bps, now)  # a failing step up: undo it now, not next tick
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == ssrc:
                    e.jitter_ms = report.jitter / 90.0  # RTP clock of video: 90 kHz
                    if rtt_s is not None:
                        e.rtt_ms = rtt_s * 1000
                    e.report(report.fraction_lost / 256, self.sent_bps(now), now)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if ssrc in ssrcs:
                e.remb(bitrate, self.sent_bps(now), now)

    # -- the layer ---------------------------------------------------------------------------

    def tick(self, layer_bps: list[float], now: float) -> None:
        """Layer choice from the estimate; `layer_bps[k]`: the rate of layers <= k."""
        e, sel = self.estimate, self.selector
        self.layer_bps = layer_bps
        nack = self.nack_loss(now)
        if nack is not None and nack >= LOSS_LOW:
            e.lost(nack, self.sent_bps(now), now)
        if sel is not None and len(layer_bps) == LAYERS:
            fits = max([k for k, bps in enumerate(layer_bps) if bps <= e.rate], default=0)
            if sel.decide(fits, now - e.last_loss, now):
                e.probe(layer_bps[sel.target] * 1.1)
        self.history.append((now, self.layer, e.rate))

    @property
    def layer(self) -> int:
        return LAYERS - 1 if self.selector is None else self.selector.current

    def state(self, now: float) -> dict[str, Any]:
        e = self.estimate
        sel = self.selector
        return {
            "estimate_kbps": round(e.rate / 1000, 1),
            "loss": round(e.loss, 4),
            "rtt_ms": None if e.rtt_ms is None else round(e.rtt_ms, 1),
            "jitter_ms": round(e.jitter_ms, 2),
            "remb_kbps": None if (r := e.fresh_remb(now)) is None else round(r / 1000, 1),
            "reports": e.reports,
            "sent_kbps": round(self.sent_bps(now) / 1000, 1),
            "layer": self.layer if sel is not None else None,
            "target_layer": sel.target if sel is not None else None,
            "layer_changes": sel.changes if sel is not None else 0,
            "layer_reason": sel.reason if sel is not None else "no temporal layers",
            "skipped": self.skipped,
            "nacked": self.nacked,
        }


def observe(sender: Any, link: ViewerLink, clock: Callable[[], float] = time.monotonic) -> None:
    """Route this sender's RTCP to `link` too (aiortc still handles it: NACK, PLI, stats)."""
    inner = patches.RTCP.resolve().__get__(sender)

    async def handle(packet: Any) -> None:
        await inner(packet)
        rtt = patches.require(sender, patches.SENDER_RTT, "a viewer's round-trip time")
        link.on_rtcp(packet, sender._ssrc, rtt, clock())

    sender._handle_rtcp_packet = handle

"""VP8 temporal layers, the viewer's side: which layers a viewer gets, and their RTP fields.

The encoder marks each frame's layer (stream/temporal.py). Per viewer, as SFUs do (mediasoup,
LiveKit, ion-sfu), a LayerSelector forwards the layers up to its current one: it steps down
at once and up one layer at a time, only at a frame of that layer that references TL0 alone
(a layer-sync frame) or at a keyframe, after the link has been quiet for a hold time that
doubles when a step up soon had to be undone. aiortc packetizes per sender with its own
sequence numbers and picture ids, so a viewer never sees a gap for frames it was not sent;
Vp8LayerPacker adds TID, the layer-sync bit Y and a per-viewer TL0PICIDX to the payload
descriptor (RFC 7741 section 4.2).

H.264 viewers get no layers (browsers' WebRTC H.264 has no temporal scalability to select
from): their encoder's bitrate follows the policy (stream/bitrate.py) over the H.264 viewers
alone, and a viewer slower than that loses packets and resumes at the keyframe it asks for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiortc.codecs.vpx import PACKET_MAX, Vp8Encoder, VpxPayloadDescriptor
from aiortc.mediastreams import VIDEO_TIME_BASE, convert_timebase

from ..temporal import LAYERS, Layer


@dataclass
class SelectorSettings:
    hold_s: float = 2.0  # a link quiet this long at a layer may try the next one up
    max_hold_s: float = 6.0  # the hold doubles after a failed step up, up to this
    failed_within_s: float = 4.0  # a step down this soon after a step up: it failed
    relax_s: float = 30.0  # no failed step up for this long: the hold is back to hold_s
    # (as it is once a step up has held for failed_within_s)


class LayerSelector:
    """Which temporal layers one viewer gets. `target` follows the link (decide); `current`
    is what is forwarded, and reaches a higher target only at a sync frame or keyframe."""

    def __init__(self, settings: SelectorSettings | None = None, top: int = LAYERS - 1) -> None:
        self.settings = settings or SelectorSettings()
        self.top = top
        self.current = top  # a new viewer starts with the whole stream (and a keyframe)
        self.target = top
        self.hold = self.settings.hold_s
        self.last_up = -math.inf
        self.last_change = -math.inf
        self.last_fail = -math.inf
        self.changes = 0
        self.reason = "start"

    def decide(self, fits: int, quiet_s: float, now: float) -> bool:
        """`fits`: the highest layer whose rate the link's estimate holds; `quiet_s`: how long
        the link has been without loss or congestion. Steps down at once; up one layer
        after `hold` quiet seconds. True when it steps up (the caller raises its estimate to
        the new layer's rate: the step up is the probe)."""
        s = self.settings
        if now - self.last_fail > s.relax_s or (
            self.last_up > self.last_fail and now - self.last_up >= s.failed_within_s
        ):
            self.hold = s.hold_s  # the last step up held: the link has room again
        if fits < self.target:
            if now - self.last_up < s.failed_within_s:
                self.hold = min(s.max_hold_s, self.hold * 2)
                self.last_fail = now
            self._set(fits, now, "the link's estimate is below this layer's rate")
            self.current = min(self.current, fits)
            return False
        quiet = min(quiet_s, now - self.last_change)
        if self.target < self.top and quiet >= self.hold:
            self._set(self.target + 1, now, f"{quiet:.0f} s without loss")
            self.last_up = now
            return True
        return False

    def _set(self, target: int, now: float, reason: str) -> None:
        if target != self.target:
            self.changes += 1
        self.target = target
        self.last_change = now
        self.reason = reason

    def forward(self, layer: Layer) -> bool:
        if layer.key:
            self.current = self.target
            return True
        if self.current < self.target and layer.tid == self.current + 1 and layer.sync:
            self.current += 1
        return layer.tid <= self.current


class Vp8LayerPacker(Vp8Encoder):
    """aiortc's VP8 packetizer (one per sender), with the temporal-layer fields. Installed as
    the sender's encoder; only pack() is used, since the track hands out encoded packets."""

    def __init__(self) -> None:
        super().__init__()
        self.tl0picidx = 0

    def pack(self, packet: object) -> tuple[list[bytes], int]:
        layer = getattr(packet, "opaque", None)
        if not isinstance(layer, Layer):
            return super().pack(packet)  # type: ignore[arg-type]
        if layer.tid == 0:
            self.tl0picidx = (self.tl0picidx + 1) % 256
        data = bytes(packet)  # type: ignore[call-overload]
        descriptor = VpxPayloadDescriptor(
            partition_start=1,
            partition_id=0,
            picture_id=self.picture_id,
            tl0picidx=self.tl0picidx,
            tid=(layer.tid, int(layer.sync or layer.key)),
        )
        head = bytes(descriptor)
        size = PACKET_MAX - len(head)
        payloads = [head + data[:size]]
        descriptor.partition_start = 0
        head = bytes(descriptor)
        payloads += [head + data[pos : pos + size] for pos in range(size, len(data), size)]
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        pts, time_base = packet.pts, packet.time_base  # type: ignore[attr-defined]
        return payloads, convert_timebase(pts, time_base, VIDEO_TIME_BASE)

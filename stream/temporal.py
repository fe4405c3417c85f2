"""VP8 temporal layers, the encoder's side: which layer each encoded frame is in.

libvpx encodes 3 temporal layers in the {0,2,1,2} pattern (FFmpeg's ``ts_layering_mode=3``,
libavcodec/libvpxenc.c set_temporal_layer_pattern): TL0 references and updates LAST; TL1
references LAST and updates GOLDEN; TL2 references LAST (pattern index 1) or GOLDEN (index 3)
and updates nothing. Dropping TL2, or TL1 and TL2, leaves a stream whose pictures decode
exactly as in the whole stream (tests/stream/test_layers.py decodes each subset and
compares). FFmpeg gives no layer id per packet: it steps its pattern index once per encoded
frame and resets it on a forced keyframe (``current_temporal_idx``); TemporalPattern follows
the same rule, and the test above fails if it drifts. Who gets which layer: webrtc/layers.py.
"""

from __future__ import annotations

from dataclasses import dataclass

LAYERS = 3
PATTERN = (0, 2, 1, 2)
SYNC = (False, True, True, False)  # references TL0 only: a viewer may step up to it here
SHARES = (0.4, 0.6, 1.0)  # of the bitrate, layers <= k (libwebrtc's 3-layer split 40/20/40)


def layer_targets(bitrate: int) -> list[float]:
    """libvpx's target rate of the layers <= k (bits per second)."""
    return [bitrate * s for s in SHARES]


def ts_parameters(bitrate: int) -> str:
    """libvpx's temporal-layer configuration through FFmpeg's ``ts-parameters`` option."""
    kbps = ",".join(str(max(1, round(b / 1000))) for b in layer_targets(bitrate))
    return (
        f"ts_number_layers={LAYERS}:ts_target_bitrate={kbps}:ts_rate_decimator=4,2,1"
        f":ts_periodicity=4:ts_layer_id={','.join(map(str, PATTERN))}:ts_layering_mode=3"
    )


@dataclass(frozen=True, slots=True)
class Layer:
    """What an encoded VP8 frame is in the layer structure (carried in av.Packet.opaque)."""

    tid: int
    sync: bool  # references TL0 only
    key: bool = False


class TemporalPattern:
    """The layer of each frame libvpx encodes, by FFmpeg's rule (see the module's doc)."""

    def __init__(self) -> None:
        self.index = 0

    def next(self, forced_key: bool) -> tuple[int, bool]:
        if forced_key:
            self.index = 0
        i = self.index
        self.index = (i + 1) % len(PATTERN)
        return PATTERN[i], SYNC[i]

"""The RTP playout-delay header extension on the video we send: bounds on the browser's
jitter buffer, 0 to 100 ms by default.

A browser's jitter buffer otherwise holds each frame for a target delay it grows from the
frame-to-frame jitter it sees, and every frame waits it out, the one that answers a click
included. Chrome reads http://www.webrtc.org/experiments/rtp-hdrext/playout-delay (offered in
its SDP) as the sender's bounds on that delay (12 bits min, 12 bits max, in 10 ms units).

Measured with the click-to-photon bench in headless Chromium (docs/remote-play.md), whose page
already sets the receiver's jitterBufferTarget to 0:
- 0/100 ms empties the jitter buffer (~2 ms -> ~0.1 ms a frame) and the frame is shown as
  before once decoded: received -> shown drops by a few ms.
- 0/0 empties it too, but Chromium then renders through its low-latency path (render time 0)
  and shows the decoded frame ~20 ms after it reaches the compositor: ~10-14 ms worse.
So the default is 0/100 ([server] playout_delay_ms; [] turns it off).

aiortc does not know the extension: it negotiates only the URIs in its HEADER_EXTENSIONS table
and writes only the fields its HeaderExtensionsMap knows. `install()` appends the URI to the
video table (so an offer that carries it gets it back in our answer, with the offer's id) and
wraps HeaderExtensionsMap.configure/set so a map configured with that id writes the three
bytes on every packet it serializes. patches.PLAYOUT names what this relies on; `check` runs
at service start.
"""

from __future__ import annotations

from typing import Any

from . import patches

URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
LOCAL_ID = 5  # our own offers' id; answers echo the offer's (aiortc's ids: mid 1, abs 3)
DEFAULT_MS = (0, 100)
_ATTR = "_framesmith_playout_delay_id"

_originals: tuple[Any, Any] | None = None  # HeaderExtensionsMap.configure, .set before us
_value = b""  # the bytes every negotiated video packet carries


def value(min_ms: int, max_ms: int) -> bytes:
    """The extension's three bytes for bounds in ms (10 ms units, 12 bits each)."""
    lo, hi = min_ms // 10, max_ms // 10
    if not (0 <= lo <= hi < 4096):
        raise ValueError(f"playout delay {min_ms}..{max_ms} ms is out of range")
    return bytes(((lo >> 4) & 0xFF, ((lo & 0xF) << 4) | (hi >> 8), hi & 0xFF))


def parse(data: bytes) -> tuple[int, int]:
    """(min, max) in ms from the extension's three bytes."""
    if len(data) != 3:
        raise ValueError(f"playout-delay is 3 bytes, got {len(data)}")
    lo = (data[0] << 4) | (data[1] >> 4)
    hi = ((data[1] & 0xF) << 8) | data[2]
    return lo * 10, hi * 10


def install(min_ms: int = DEFAULT_MS[0], max_ms: int = DEFAULT_MS[1]) -> None:
    """Negotiate playout-delay on video and send these bounds where it was negotiated
    (process-wide, as aiortc's tables are; a second call only changes the bounds)."""
    global _originals, _value
    _value = value(min_ms, max_ms)
    if _originals is not None:
        return
    patches.check(patches.PLAYOUT)
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

    table: dict[str, list[Any]] = patches.PLAYOUT[0].resolve()
    if not any(ext.uri == URI for ext in table["video"]):
        table["video"].append(RTCRtpHeaderExtensionParameters(id=LOCAL_ID, uri=URI))
    cls = patches.PLAYOUT[1].resolve()
    unpack = patches.PLAYOUT[3].resolve()
    pack = patches.PLAYOUT[4].resolve()
    configure, serialize = cls.configure, cls.set

    def configure_with_playout(self: Any, parameters: Any) -> None:
        configure(self, parameters)
        ids = [ext.id for ext in parameters.headerExtensions if ext.uri == URI]
        setattr(self, _ATTR, ids[0] if ids else None)

    def set_with_playout(self: Any, values: Any) -> tuple[int, bytes]:
        profile, data = serialize(self, values)
        x_id = getattr(self, _ATTR, None)
        if x_id is None:
            return profile, data
        return pack([*unpack(profile, data), (x_id, _value)])

    cls.configure = configure_with_playout
    cls.set = set_with_playout
    _originals = (configure, serialize)


def uninstall() -> None:
    """aiortc as it was: the extension no longer negotiated nor sent (sessions negotiated
    before keep their maps' ids but write nothing for them)."""
    global _originals
    if _originals is None:
        return
    table: dict[str, list[Any]] = patches.PLAYOUT[0].resolve()
    table["video"][:] = [ext for ext in table["video"] if ext.uri != URI]
    cls = patches.PLAYOUT[1].resolve()
    cls.configure, cls.set = _originals
    _originals = None

"""The RTP playout-delay header extension (min = max = 0) on the video we send.

A browser's jitter buffer otherwise holds each frame for a target delay it grows from the
frame-to-frame jitter it sees; on a loaded host (our capture and encode on shared cores) that
target sits at tens of ms, and every frame, the one that answers a click included, waits it
out. Chrome reads http://www.webrtc.org/experiments/rtp-hdrext/playout-delay (offered in its
SDP) as the sender's bounds on that delay; 0/0 tells it to render each frame as soon as it is
decoded, which is what a player wants (a spectator may see a little more judder on a jittery
link: the same trade Chrome makes for game streaming and screen sharing senders).

aiortc does not know the extension: it negotiates only the URIs in its HEADER_EXTENSIONS table
and writes only the fields its HeaderExtensionsMap knows. `install()` appends the URI to the
video table (so an offer that carries it gets it back in our answer, with the offer's id) and
wraps HeaderExtensionsMap.configure/set so a map configured with that id writes the three
bytes (12 bits min, 12 bits max, in 10 ms units: all zero) on every packet it serializes.
patches.PLAYOUT names what this relies on; `check` runs at service start.

Off by default ([server] zero_playout_delay): measured with the click-to-photon bench in
headless Chromium, 0/0 takes the jitter buffer from ~2 ms to ~0.1 ms a frame, but Chromium then
renders through its low-latency path and the decoded frame reaches the screen ~12 ms later
(received -> shown 25 ms instead of 11-13 ms), since the viewer page already sets the
receiver's jitterBufferTarget to 0. The switch stays for browsers and displays where it pays.
"""

from __future__ import annotations

from typing import Any

from . import patches

URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
LOCAL_ID = 5  # our own offers' id; answers echo the offer's (aiortc's ids: mid 1, abs 3)
VALUE = b"\x00\x00\x00"  # min 0, max 0 (units of 10 ms)
_ATTR = "_framesmith_playout_delay_id"

_originals: tuple[Any, Any] | None = None  # HeaderExtensionsMap.configure, .set before us


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


def install() -> None:
    """Negotiate playout-delay on video and send 0/0 where it was negotiated (idempotent;
    process-wide, as aiortc's tables are)."""
    global _originals
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
        return pack([*unpack(profile, data), (x_id, VALUE)])

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

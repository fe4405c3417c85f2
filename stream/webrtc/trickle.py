"""Trickle ICE over HTTP PATCH (RFC 9725 section 4.3.1; the WHEP draft does the same).

A client that sent its offer before its candidates were gathered PATCHes them to the session
URL as `application/trickle-ice-sdpfrag` (RFC 8840): `a=ice-ufrag`/`a=ice-pwd`, one
`m=` section per media with `a=mid`, its `a=candidate` lines and maybe `a=end-of-candidates`.
The request carries `If-Match` with the ETag of the 201; a stale tag is a 412. Candidates go
to aiortc's `addIceCandidate`; with BUNDLE every m-line shares the first one's transport, so
they are all given to that one (aiortc ignores candidates addressed to a bundled m-line).

ICE restarts (a fragment with a new ufrag/pwd, `If-Match: *`) are not supported: aiortc
1.16 cannot restart ICE on a live connection. RFC 9725 asks for 422 then; the client POSTs a
new offer instead (a new publisher takes over from the old one).

None of the clients we test trickle yet (FFmpeg and OBS send complete offers; GStreamer's
and our scripts wait for gathering), so this path is tested with aiortc's own candidates
(tests/stream/test_whip_rfc9725.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc import RTCIceCandidate, RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from .signalling import SignallingError

MIME = "application/trickle-ice-sdpfrag"
MAX_CANDIDATES = 64  # per request: a client gathers a handful, not hundreds


@dataclass
class Fragment:
    ufrag: str = ""
    pwd: str = ""
    candidates: list[RTCIceCandidate] = field(default_factory=list)
    end: bool = False


def parse_fragment(text: str) -> Fragment:
    """An RFC 8840 SDP fragment; a 400 SignallingError names the line it cannot read."""
    frag = Fragment()
    mid: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("m="):
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        elif line.startswith("a=ice-ufrag:"):
            frag.ufrag = line[len("a=ice-ufrag:") :]
        elif line.startswith("a=ice-pwd:"):
            frag.pwd = line[len("a=ice-pwd:") :]
        elif line == "a=end-of-candidates":
            frag.end = True
        elif line.startswith("a=candidate:"):
            try:
                candidate = candidate_from_sdp(line[len("a=candidate:") :])
            except (AssertionError, ValueError, IndexError):
                raise SignallingError(400, f"malformed candidate line: {line[:120]!r}") from None
            candidate.sdpMid = mid
            frag.candidates.append(candidate)
        elif not line.startswith(("a=", "m=", "c=")) or len(line) < 3:
            raise SignallingError(400, f"not an SDP fragment line: {line[:120]!r}")
    if len(frag.candidates) > MAX_CANDIDATES:
        raise SignallingError(400, f"more than {MAX_CANDIDATES} candidates in one PATCH")
    return frag


async def apply_fragment(pc: RTCPeerConnection, frag: Fragment) -> None:
    """Add the fragment's candidates to the session's ICE transport."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        raise SignallingError(409, "the session has no media to add candidates to")
    bundled = pc.remoteDescription is not None and "a=group:BUNDLE" in pc.remoteDescription.sdp
    for candidate in frag.candidates:
        if bundled or candidate.sdpMid is None:
            candidate.sdpMid = transceivers[0].mid  # one transport, owned by the first m-line
        await pc.addIceCandidate(candidate)
    if frag.end:
        await pc.addIceCandidate(None)

"""An answer that holds only what the route is for: every other audio/video m-line inactive.

aiortc answers an offered m-line it has no transceiver for with a new recvonly transceiver
(rtcpeerconnection.setRemoteDescription), and once connected starts its RTCRtpReceiver:
the receiver registers with the transport's RTP router and a decoder thread decodes every
frame onto a track nobody reads (rtcpeerconnection.__connect, rtcrtpreceiver.receive). A
WHEP viewer's sendonly audio m-line so got `a=recvonly`, and four viewers sending Opus grew
the server by 300 MB in a minute. A transceiver whose direction is inactive when the answer
is made is answered `a=inactive` and never started: no receiver in the router (a peer that
sends anyway has its packets dropped there), no decoder thread.

WHEP: the sendonly video transceivers the session added, the game's sound where the viewer
asked for it (sendonly, its Opus fmtp saying stereo: `stereo_opus`), and the data channel,
which is no transceiver. WHIP: the publisher's one video and, where the service passes a
publisher's sound on, its Opus audio, both received (recvonly: we never send it media).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aiortc import RTCPeerConnection

from . import patches


def answer_only(
    pc: RTCPeerConnection, served: Collection[Any], direction: str | None = None
) -> list[str]:
    """Set every transceiver of `pc` but `served` inactive (call it after
    setRemoteDescription, before createAnswer); `direction`, when given, is set on the
    served ones. Returns the m-lines set inactive ("audio:1"), for the log."""
    refused = []
    for tr in pc.getTransceivers():
        if tr in served:
            if direction is not None:
                tr.direction = direction
        else:
            tr.direction = "inactive"
            refused.append(f"{tr.kind}:{tr.mid}")
    return refused


def stereo_opus(transceiver: Any, channels: int) -> None:
    """Say in the answer's Opus fmtp that our sound is stereo (`stereo=1;sprop-stereo=1`,
    RFC 7587 7.1) when it has 2 channels. Without it a browser may decode our stereo Opus to
    mono (Chromium does: its receiver follows the remote description's stereo flag). aiortc
    answers with its own codec's (empty) parameters; the transceiver's negotiated codecs
    are copies, so setting them touches no other session (call it after
    setRemoteDescription, before createAnswer)."""
    if channels != 2:
        return
    codecs = patches.require(transceiver, "_codecs", "the answer's Opus fmtp (stereo)")
    for codec in codecs:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters = {**codec.parameters, "stereo": 1, "sprop-stereo": 1}


def sends_opus(media: Any) -> bool:
    """Does an offer's m-line send (sendonly or sendrecv) Opus? A WHIP publisher's audio is
    taken only then; we never send it anything on it (recvonly)."""
    if media.kind != "audio" or media.direction not in (None, "sendonly", "sendrecv"):
        return False
    return any(c.mimeType.lower() == "audio/opus" for c in media.rtp.codecs)

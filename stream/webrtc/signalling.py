"""What a WHEP/WHIP offer must hold before a peer connection is made for it."""

from __future__ import annotations

from aiortc import sdp as aiortc_sdp

MIME = {"vp8": "video/VP8", "h264": "video/H264"}


class SignallingError(Exception):
    """A request the server refuses: HTTP status and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_offer(text: str, need_video: bool = True) -> aiortc_sdp.SessionDescription:
    if not text.startswith("v=0"):
        raise SignallingError(400, "malformed SDP: an offer starts with 'v=0'")
    try:
        desc = aiortc_sdp.SessionDescription.parse(text)
    except Exception as e:  # noqa: BLE001 - any parser failure is the client's SDP
        raise SignallingError(400, f"malformed SDP: {e}") from None
    if not desc.media:
        raise SignallingError(400, "malformed SDP: no m= lines")
    for m in desc.media:
        if m.kind in ("audio", "video", "application") and (
            m.ice is None or not m.ice.usernameFragment or m.dtls is None or not m.dtls.fingerprints
        ):
            raise SignallingError(
                400, f"malformed SDP: m={m.kind} lacks ICE credentials or a DTLS fingerprint"
            )
    if need_video and not any(m.kind == "video" for m in desc.media):
        raise SignallingError(400, "SDP offer has no video m-line")
    return desc


def offered_codecs(media: aiortc_sdp.MediaDescription) -> set[str]:
    names = {c.mimeType.lower() for c in media.rtp.codecs}
    return {k for k, mime in MIME.items() if mime.lower() in names}

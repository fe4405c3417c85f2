"""Game sound (issue 26): captured once, Opus encoded once, sent in sync to every viewer
whose offer receives audio. The WHEP session's side of it is `offer_receives_audio` and
`add_audio`; the rest is GameAudio's (game.py)."""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender

from .game import GameAudio
from .opus import OpusTrack, SharedOpus, schedule_reports
from .spec import AudioPlan, parse, resolve

__all__ = [
    "AudioPlan",
    "GameAudio",
    "OpusTrack",
    "SharedOpus",
    "add_audio",
    "offer_receives_audio",
    "parse",
    "resolve",
]


def offer_receives_audio(desc: Any) -> bool:
    """Does the offer's first audio m-line receive (recvonly or sendrecv) Opus? What a
    viewer sends on it is never received: our side answers it sendonly (add_audio)."""
    audio = next((m for m in desc.media if m.kind == "audio"), None)
    if audio is None or audio.direction not in (None, "recvonly", "sendrecv"):
        return False
    return any(c.mimeType.lower() == "audio/opus" for c in audio.rtp.codecs)


def add_audio(pc: RTCPeerConnection, track: OpusTrack) -> Any:
    """Our sendonly Opus transceiver; added before setRemoteDescription, it takes the offer's
    first audio m-line (aiortc matches transceivers by kind in order)."""
    tr = pc.addTransceiver(track, direction="sendonly")
    tr.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/opus"]
    )
    schedule_reports(tr.sender, lambda: track.due)
    video = track.video
    encoder = getattr(video.track, "encoder", None) if video is not None else None
    if video is not None and getattr(encoder, "rtp_clock", "") == "send":
        # its video's reports too, so both tracks are placed on their due times
        for t in pc.getTransceivers():
            if t.sender.track is video.track:
                schedule_reports(t.sender, lambda: video.due)
                video.at_encoder = True
    return tr

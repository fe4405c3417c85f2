"""H.264 profiles a WHIP publisher may send us, and the ones we send to WHEP viewers.

aiortc 1.16 lists only Constrained Baseline (`42001f`, `42e01f`) and matches an offered
H.264 codec by profile (aiortc.rtcpeerconnection.is_codec_compatible), so FFmpeg's WHIP
offer for a High-profile stream (`profile-level-id=64000d`, copied from the SPS) failed with
"Failed to set remote video description send parameters". Real encoders publish Main and
High (OBS encodes High by default; x264's default is High). aiortc's receive path decodes
with FFmpeg's h264 decoder, which takes every one of these profiles at any level, so
receiving them needs only their entries in aiortc's codec table (`aiortc.codecs.CODECS`,
patches.CODECS).

The entries are appended after aiortc's, so an offer listing Constrained Baseline first
still gets it; their level (5.1, `...33`) says what we can receive (level-asymmetry-allowed):
any level up to 4K. OBS labels whatever it encodes `42e01f` (ex_webrtc#171): that offer
matches aiortc's own Constrained Baseline entry, and the decoder reads the real profile from
the SPS, so a mislabelled High stream decodes too (tests/stream/test_interop_obs.py).

We send Constrained Baseline only (the shared encoder: libx264 baseline for WebRTC), so a
WHEP viewer is negotiated to aiortc's own entries (`sendable`), never to a profile we
cannot produce.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
)

from . import patches

# (profile_idc, constraint flags) as hex, then level 5.1: Main, Constrained High, High
RECEIVE_ONLY = ("4d0033", "640c33", "640033")
CLOCK = 90000


def _profile(params: Mapping[str, object]) -> str:
    return str(params.get("profile-level-id", "")).lower()


def add_receive_profiles() -> None:
    """Append Main / Constrained High / High to aiortc's video codecs (idempotent)."""
    video: list[RTCRtpCodecParameters] = patches.CODECS.resolve()["video"]
    have = {_profile(c.parameters) for c in video if c.mimeType.lower() == "video/h264"}
    pt = max(c.payloadType for c in video if c.payloadType is not None) + 1
    for plid in RECEIVE_ONLY:
        if plid in have:
            continue
        video.append(
            RTCRtpCodecParameters(
                mimeType="video/H264",
                clockRate=CLOCK,
                payloadType=pt,
                rtcpFeedback=[
                    RTCRtcpFeedback(type="nack"),
                    RTCRtcpFeedback(type="nack", parameter="pli"),
                    RTCRtcpFeedback(type="goog-remb"),
                ],
                parameters={
                    "level-asymmetry-allowed": "1",
                    "packetization-mode": "1",
                    "profile-level-id": plid,
                },
            )
        )
        video.append(
            RTCRtpCodecParameters(
                mimeType="video/rtx", clockRate=CLOCK, payloadType=pt + 1, parameters={"apt": pt}
            )
        )
        pt += 2


def sendable(codecs: list[RTCRtpCodecCapability]) -> list[RTCRtpCodecCapability]:
    """The capabilities a WHEP sender may be negotiated to: every one but the receive-only
    H.264 profiles."""
    return [c for c in codecs if _profile(c.parameters or {}) not in RECEIVE_ONLY]

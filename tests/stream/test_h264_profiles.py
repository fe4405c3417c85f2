"""H.264 profiles (stream/webrtc/h264.py): offers of Main and High are answered (aiortc alone
matched only Constrained Baseline), and a WHEP sender is never negotiated to a profile the
shared encoder does not make."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCRtpSender

from stream.webrtc import h264

from .rtc import NO_STUN


@pytest.fixture(scope="module", autouse=True)
def _profiles():
    h264.add_receive_profiles()


def _h264(plids: tuple[str, ...]):
    caps = RTCRtpSender.getCapabilities("video").codecs
    by = {str(c.parameters.get("profile-level-id", "")): c for c in caps}
    return [by[p] for p in plids]


def _fmtp(sdp: str) -> list[str]:
    return [x for x in sdp.splitlines() if x.startswith("a=fmtp:") and "profile-level-id" in x]


@pytest.mark.parametrize("plid", ["4d0033", "640c33", "640033"])
async def test_a_publishers_main_or_high_offer_is_answered(plid):
    publisher, server = RTCPeerConnection(NO_STUN), RTCPeerConnection(NO_STUN)
    try:
        publisher.addTransceiver("video", direction="sendonly").setCodecPreferences(_h264((plid,)))
        await publisher.setLocalDescription(await publisher.createOffer())
        await server.setRemoteDescription(publisher.localDescription)
        await server.setLocalDescription(await server.createAnswer())
        assert [f"profile-level-id={plid}" in x for x in _fmtp(server.localDescription.sdp)] == [
            True
        ]
    finally:
        await publisher.close()
        await server.close()


async def test_adding_profiles_twice_changes_nothing():
    before = len(RTCRtpSender.getCapabilities("video").codecs)
    h264.add_receive_profiles()
    assert len(RTCRtpSender.getCapabilities("video").codecs) == before


async def test_a_viewer_offering_high_first_still_gets_constrained_baseline():
    viewer, server = RTCPeerConnection(NO_STUN), RTCPeerConnection(NO_STUN)
    try:
        viewer.addTransceiver("video", direction="recvonly").setCodecPreferences(
            _h264(("640033", "42e01f"))
        )
        await viewer.setLocalDescription(await viewer.createOffer())
        tr = server.addTransceiver("video", direction="sendonly")
        caps = RTCRtpSender.getCapabilities("video").codecs
        tr.setCodecPreferences([c for c in h264.sendable(caps) if c.mimeType == "video/H264"])
        await server.setRemoteDescription(viewer.localDescription)
        await server.setLocalDescription(await server.createAnswer())
        fmtp = _fmtp(server.localDescription.sdp)
        assert fmtp and all("profile-level-id=42e01f" in x for x in fmtp), fmtp
    finally:
        await viewer.close()
        await server.close()

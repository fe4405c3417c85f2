"""The private aiortc/aioice attributes we patch (stream/webrtc/patches.py): checked at start-up,
and the one that matters most proven through a real peer: a viewer's PLI, sent as RTCP over
SRTP by an aiortc receiver, reaches the shared encoder and makes a keyframe."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiortc.rtcrtpsender import RTCRtpSender

from stream.webrtc import patches

from .rtc import recv_frames, small_config, start_server, whep


def test_every_patched_attribute_exists_in_the_installed_libraries():
    patches.check()


def test_a_renamed_attribute_fails_loudly_naming_it(monkeypatch):
    monkeypatch.delattr(RTCRtpSender, "_send_keyframe")
    with pytest.raises(patches.LibraryChanged) as e:
        patches.check()
    assert "aiortc.rtcrtpsender.RTCRtpSender._send_keyframe is gone" in str(e.value)
    assert "PLI" in str(e.value)


def test_a_replaced_aioice_method_and_an_instance_attribute_are_checked_too(monkeypatch):
    import aioice.ice

    monkeypatch.delattr(aioice.ice.Connection, "query_consent")
    init = aioice.ice.Connection.__init__

    def without_nominated(self, *args, **kwargs):
        init(self, *args, **kwargs)
        del self._nominated  # as if aioice renamed it

    monkeypatch.setattr(aioice.ice.Connection, "__init__", without_nominated)
    with pytest.raises(patches.LibraryChanged) as e:
        patches.check()
    assert "aioice.ice.Connection.query_consent is gone" in str(e.value)
    assert "aioice.ice.Connection._nominated is gone" in str(e.value)


@pytest.mark.gpu
@pytest.mark.timeout(90)
async def test_the_service_refuses_to_start_with_a_changed_aiortc(monkeypatch):
    monkeypatch.delattr(RTCRtpSender, "_send_keyframe")
    with pytest.raises(patches.LibraryChanged, match="_send_keyframe"):
        await start_server(small_config())


@pytest.mark.gpu
@pytest.mark.timeout(90)
async def test_a_viewers_pli_reaches_the_shared_encoder():
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url)
            frames = await recv_frames(v.tracks[0], 5, 30)
            assert len(frames) == 5
            session = srv.service.sessions.viewers[0]
            track = session.tracks[0]
            encoder = track.encoder
            keyframes = encoder.keyframes
            await asyncio.sleep(1.1)  # past encoder.min_keyframe_interval_s (1 s)
            receiver = v.pc.getTransceivers()[0].receiver
            ssrcs = list(receiver._RTCRtpReceiver__remote_streams)  # the server's media SSRC
            assert ssrcs
            await receiver._send_rtcp_pli(ssrcs[0])
            deadline = time.monotonic() + 10
            while (track.pli < 1 or encoder.keyframes <= keyframes) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert track.pli == 1, "the PLI did not reach the PacketTrack"
            assert encoder.keyframes > keyframes, "the PLI made no keyframe"
            await v.close(http, srv.url)
    finally:
        await srv.close()

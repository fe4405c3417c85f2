"""A session answers only what its route is for (issue 25): a WHEP viewer's own audio, and a
WHIP publisher's audio or any media it asks us to send, are answered `a=inactive` and never
received, even when the peer ignores the answer and sends anyway (real aiortc peers against
a real server; the peer's answer is edited to say recvonly, as an attacker's would)."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import AudioStreamTrack

from stream.sources import SourceState
from stream.tools.soak.publisher import SceneTrack

from .rtc import NO_STUN, recv_frames, small_config, start_server

pytestmark = [pytest.mark.gpu]
SDP = {"Content-Type": "application/sdp"}


def directions(sdp: str) -> list[tuple[str, str | None]]:
    return [(m.kind, m.direction) for m in aiortc_sdp.SessionDescription.parse(sdp).media]


def claim_recvonly(answer: str, kind: str) -> str:
    """The answer as a hostile peer rewrites it: its `kind` m-lines say a=recvonly, so the
    peer's own stack sends that media regardless of what the server answered."""
    sections = answer.split("\r\nm=")
    for i, sec in enumerate(sections):
        if sec.startswith(f"{kind} "):
            sections[i] = sec.replace("a=inactive", "a=recvonly")
    return "\r\nm=".join(sections)


def audio_decoders() -> list[str]:
    """aiortc's receiver names its decoder thread after the kind (rtcrtpreceiver.receive)."""
    return [t.name for t in threading.enumerate() if t.name == "audio-decoder"]


async def _no_decoder() -> bool:
    return audio_decoders() == []


async def audio_packets_sent(pc: RTCPeerConnection) -> int:
    sent = 0
    for tr in pc.getTransceivers():
        if tr.kind == "audio":
            for s in (await tr.sender.getStats()).values():
                sent += s.packetsSent if s.type == "outbound-rtp" else 0
    return sent


async def until(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await cond():
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.timeout(90)
async def test_a_viewers_audio_is_answered_inactive_and_never_decoded():
    srv = await start_server(small_config())
    pc = RTCPeerConnection(NO_STUN)
    try:
        async with aiohttp.ClientSession() as http:
            got = asyncio.Event()
            tracks = []

            @pc.on("track")
            def _on(track) -> None:
                tracks.append(track)
                got.set()

            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver(AudioStreamTrack(), direction="sendonly")  # Opus, 50 frames/s
            await pc.setLocalDescription(await pc.createOffer())
            async with http.post(srv.url + "/whep", data=pc.localDescription.sdp, headers=SDP) as r:
                answer = await r.text()
                assert r.status == 201, answer
            assert directions(answer) == [("video", "sendonly"), ("audio", "inactive")]

            # the attacker's stack is told to send its audio anyway
            await pc.setRemoteDescription(
                RTCSessionDescription(claim_recvonly(answer, "audio"), "answer")
            )
            await asyncio.wait_for(got.wait(), 10)
            assert len(await recv_frames(tracks[0], 3, 20)) == 3  # connected: video flows

            async def sending() -> bool:
                return await audio_packets_sent(pc) >= 100

            assert await until(sending, 20), "the viewer never sent its audio"
            (session,) = srv.service.sessions.viewers
            audio = [t for t in session.pc.getTransceivers() if t.kind == "audio"]
            assert [t.currentDirection for t in audio] == ["inactive"]
            # nothing receives it: no decoder thread, nothing queued on the remote track
            assert audio_decoders() == []
            track = audio[0].receiver.track
            assert track is None or track._queue.qsize() == 0
    finally:
        await pc.close()
        await srv.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sound", ["none", "auto"])
async def test_a_publisher_is_answered_its_video_only_and_sent_nothing(sound):
    """`[audio] source = none`: the publisher's audio is answered inactive. `auto` (issue
    26): its first (sendonly Opus) audio is received and passed on undecoded, the one it
    asks us for stays inactive; either way no decoder thread runs and nothing is sent."""
    srv = await start_server(small_config(**{"source.uri": "webrtc", "audio.source": sound}))
    pc = RTCPeerConnection(NO_STUN)
    try:
        async with aiohttp.ClientSession() as http:
            pc.addTransceiver(SceneTrack(160, 90, 15.0), direction="sendonly")
            pc.addTransceiver(AudioStreamTrack(), direction="sendonly")  # its microphone
            pc.addTransceiver("audio", direction="recvonly")  # asks us for audio
            await pc.setLocalDescription(await pc.createOffer())
            async with http.post(srv.url + "/whip", data=pc.localDescription.sdp, headers=SDP) as r:
                answer = await r.text()
                assert r.status == 201, answer
            taken = "recvonly" if sound == "auto" else "inactive"
            assert directions(answer) == [
                ("video", "recvonly"),
                ("audio", taken),
                ("audio", "inactive"),
            ]
            await pc.setRemoteDescription(
                RTCSessionDescription(
                    claim_recvonly(answer, "audio") if sound == "none" else answer, "answer"
                )
            )
            svc = srv.service

            async def live() -> bool:
                return svc.source.state is SourceState.LIVE

            assert await until(live, 20), "the publisher's video never arrived"

            async def sending() -> bool:
                return await audio_packets_sent(pc) >= 100

            assert await until(sending, 20), "the publisher never sent its audio"
            (session,) = svc.sessions.publishers
            got = {(t.kind, t.mid): t.currentDirection for t in session.pc.getTransceivers()}
            assert sorted(got.values()) == ["inactive", taken, "recvonly"], got
            if sound == "auto":  # passed on as it came: received, never decoded
                assert session.sound_in is not None and session.sound_in.passed > 50
            assert await until(_no_decoder, 5), audio_decoders()
            for t in session.pc.getTransceivers():  # the server sends the publisher no media
                stats = (await t.sender.getStats()).values()
                rtp = [s for s in stats if s.type == "outbound-rtp"]
                assert sum(s.packetsSent for s in rtp) == 0, (t.kind, rtp)
    finally:
        await pc.close()
        await srv.close()

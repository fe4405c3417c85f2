"""OBS Studio's WHIP offer (libdatachannel; tests/stream/clients/obs_offer.sdp, recorded):
session-level `a=setup:actpass`, `a=ice-options:ice2,trickle`, no candidates (so only our
answer's candidates can connect), and H.264 labelled `42e01f` whatever OBS encodes (High by
default).

OBS itself cannot run here (no display, no OBS package), so the offer's shape is driven by an
aiortc peer: its own offer is replaced by the recorded one, with only the ICE credentials,
fingerprint and SSRCs swapped for the peer's, and it publishes a real High-profile stream
(libx264 `profile=high`, SPS profile_idc 100) from PyAV as an av.Packet track. The server
must decode it at the output size; the marker gives publisher-to-viewer latency.
"""

from __future__ import annotations

import fractions
import re
import time
from pathlib import Path

import aiohttp
import av
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from stream.tools.soak.publisher import SceneTrack

from .interop import figures, receive, report
from .rtc import NO_STUN, small_config, start_server, whep

pytestmark = [pytest.mark.gpu, pytest.mark.interop]

OFFER = Path(__file__).with_name("clients") / "obs_offer.sdp"
SDP = {"Content-Type": "application/sdp"}
PUBLISHED, FPS = (160, 90), 15
OUT = (320, 180)


class HighProfileTrack(MediaStreamTrack):
    """The scene (with its frame marker) encoded by libx264 High, no B-frames, a keyframe a
    second: packets go out as they are (aiortc does not re-encode an av.Packet track)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.scene = SceneTrack(*PUBLISHED, FPS)
        self.codec = av.CodecContext.create("libx264", "w")
        self.codec.width, self.codec.height = PUBLISHED
        self.codec.pix_fmt = "yuv420p"
        self.codec.time_base = fractions.Fraction(1, FPS)
        self.codec.gop_size = FPS
        self.codec.max_b_frames = 0
        self.codec.bit_rate = 250_000
        self.codec.options = {"profile": "high", "preset": "veryfast", "tune": "zerolatency"}
        self.sent: dict[int, float] = {}  # frame number -> when it went to the encoder
        self.profile_idc: int | None = None
        self.pending: list[av.Packet] = []

    async def recv(self) -> av.Packet:
        while not self.pending:
            k = self.scene.k
            frame = await self.scene.recv()
            frame.pts, frame.time_base = k, fractions.Fraction(1, FPS)
            self.sent[k] = time.time()
            self.pending = list(self.codec.encode(frame))
        packet = self.pending.pop(0)
        data = bytes(packet)
        if self.profile_idc is None and (i := data.find(b"\x00\x00\x01\x67")) >= 0:
            self.profile_idc = data[i + 4]
        packet.pts = int(packet.pts * 90000 / FPS)
        packet.time_base = fractions.Fraction(1, 90000)
        return packet


def obs_offer_for(local_sdp: str) -> str:
    """The recorded OBS offer, with the ICE credentials, fingerprint and SSRCs of the peer
    that will really send (the rest, 42e01f and all, as OBS wrote it)."""
    offer = OFFER.read_text()

    def first(pattern: str, text: str) -> str:
        found = re.search(pattern, text, re.M)
        assert found, pattern
        return found.group(1)

    for attr in ("ice-ufrag", "ice-pwd", "fingerprint"):
        ours = first(rf"^a={attr}:(.+?)\r?$", local_sdp)
        offer = re.sub(rf"^a={attr}:.+?$", f"a={attr}:{ours}\r", offer, count=1, flags=re.M)
    sections = local_sdp.split("m=")[1:]
    for kind, recorded in (("audio", "3382040868"), ("video", "1349455990")):
        section = next(s for s in sections if s.startswith(kind))
        offer = offer.replace(recorded, first(r"^a=ssrc:(\d+) ", section))
    return offer.replace("\r\r", "\r")


async def _post(http: aiohttp.ClientSession, url: str, offer: str):
    async with http.post(url + "/whip", data=offer, headers=SDP) as r:
        return r.status, await r.text(), r.headers


def _cfg():
    return small_config(**{"source.uri": "webrtc", "source.width": 192, "source.height": 108})


@pytest.mark.timeout(60)
async def test_the_recorded_obs_offer_is_answered_with_our_candidates():
    srv = await start_server(_cfg())
    try:
        async with aiohttp.ClientSession() as http:
            status, answer, headers = await _post(http, srv.url, OFFER.read_text())
            assert status == 201, answer
            assert headers["Location"].startswith("/whip/") and headers["ETag"]
            lines = answer.splitlines()
            # OBS offered no candidates: ours are the only way to connect (and FFmpeg uses the
            # first udp host one)
            assert any(re.match(r"a=candidate:\S+ 1 udp \d+ \S+ \d+ typ host", x) for x in lines)
            assert "a=end-of-candidates" in lines  # all of them: we do not trickle ours
            assert "a=setup:active" in lines  # we take the DTLS client role OBS offered
            video = answer[answer.index("m=video") :]
            assert "a=recvonly" in video and "H264/90000" in video
            audio = answer[answer.index("m=audio") : answer.index("m=video")]
            # OBS's Opus is taken (auto with a webrtc source passes it on: issue 26), and
            # nothing is sent to it
            assert "a=recvonly" in audio and "opus/48000/2" in audio
            assert len(answer.encode()) <= 8192  # FFmpeg's limit on an answer
            print(f"INTEROP answer to the OBS offer: {len(answer.encode())} bytes")
            async with http.delete(srv.url + headers["Location"]) as r:
                assert r.status == 200  # OBS needs 200 on DELETE
    finally:
        await srv.close()


@pytest.mark.timeout(90)
async def test_an_obs_shaped_publisher_streaming_high_profile_as_42e01f_is_decoded(artifacts):
    srv = await start_server(_cfg())
    pc = RTCPeerConnection(NO_STUN)
    track = HighProfileTrack()
    try:
        async with aiohttp.ClientSession() as http:
            viewer = await whep(http, srv.url)
            pc.addTransceiver("audio", direction="sendonly")
            pc.addTransceiver(track, direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            offer = obs_offer_for(pc.localDescription.sdp)
            assert "a=candidate" not in offer and "profile-level-id=42e01f" in offer
            status, answer, headers = await _post(http, srv.url, offer)
            assert status == 201, answer
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            got = await receive(viewer.tracks[0], 12)
            assert srv.service.sessions.publishers, "the OBS-shaped publisher was dropped"
            async with http.delete(srv.url + headers["Location"]) as r:
                assert r.status == 200
            await viewer.close(http, srv.url)
    finally:
        await pc.close()
        await srv.close()
    fig = figures(
        "OBS 30.2 offer shape (aiortc peer)",
        "WHIP in",
        f"H.264 High (profile_idc {track.profile_idc}) offered as 42e01f",
        got,
        OUT,
        track.sent,
    )
    report(fig, artifacts)
    assert track.profile_idc == 100
    assert fig.frames >= 0.6 * 10 * FPS, fig
    assert fig.markers_read >= 0.9 * fig.frames, fig
    assert fig.latency_median_ms is not None and fig.latency_median_ms < 1000, fig

"""A WHIP publisher's stream is checked before aiortc decodes it (size, chroma, bit depth)
and its decode queues are bounded (issue 25; stream/webrtc/ingest.py, bitstream.py).

Real libx264/libvpx streams, real aiortc publishers against a real server; the server's
H.264 decoder (aiortc's, FFmpeg's) is watched to show what it was handed."""

from __future__ import annotations

import asyncio
import logging
import time
from fractions import Fraction

import aiohttp
import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs import h264 as aiortc_h264
from aiortc.mediastreams import MediaStreamTrack

from stream.sources.whip import frame_refusal
from stream.webrtc import patches
from stream.webrtc.answer import answer_only
from stream.webrtc.ingest import IngestLimits, encoded_refusal, guard

from .rtc import NO_STUN, recv_frames, small_config, start_server

SDP = {"Content-Type": "application/sdp"}
LIMITS = IngestLimits(max_width=160, max_height=90)


def picture(w: int, h: int, k: int = 0) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    return ((x + y + 40 * k) % 256 * np.ones(3, np.float32)).astype(np.uint8)


def encoder(codec: str, w: int, h: int, pix_fmt: str, gop: int = 15) -> av.CodecContext:
    c = av.CodecContext.create(codec, "w")
    c.width, c.height, c.pix_fmt, c.gop_size = w, h, pix_fmt, gop
    c.time_base = Fraction(1, 90000)
    if codec == "libx264":
        c.options = {"preset": "ultrafast", "tune": "zerolatency"}
    return c


def encode(codec: str, w: int, h: int, pix_fmt: str, n: int = 2) -> list[bytes]:
    c = encoder(codec, w, h, pix_fmt)
    out = []
    for k in range(n):
        f = av.VideoFrame.from_ndarray(picture(w, h, k), "rgb24").reformat(format=pix_fmt)
        f.pts, f.time_base = k * 6000, Fraction(1, 90000)
        out += [bytes(p) for p in c.encode(f)]
    return out + [bytes(p) for p in c.encode(None)]


@pytest.mark.parametrize(
    ("codec", "size", "pix_fmt", "refused"),
    [
        ("libx264", (160, 90), "yuv420p", None),
        ("libx264", (158, 88), "yuv420p", None),  # cropped from 160x96 coded
        ("libx264", (162, 90), "yuv420p", "162x90, over the 160x90 limit"),
        ("libx264", (160, 96), "yuv420p", "160x96, over the 160x90 limit"),
        ("libx264", (64, 48), "yuv444p", "4:4:4 chroma"),
        ("libx264", (64, 48), "yuv422p", "4:2:2 chroma"),
        ("libx264", (64, 48), "gray", "4:0:0 chroma"),
        ("libx264", (64, 48), "yuv420p10le", "10-bit samples"),
        ("libvpx", (160, 90), "yuv420p", None),
        ("libvpx", (320, 90), "yuv420p", "320x90, over the 160x90 limit"),
    ],
)
def test_a_streams_headers_are_judged_before_decode(codec, size, pix_fmt, refused):
    frames = encode(codec, *size, pix_fmt)
    name = "H264" if codec == "libx264" else "VP8"
    reason, key = encoded_refusal(name, frames[0], LIMITS)
    assert key
    assert (reason is None) if refused is None else (refused in (reason or "")), reason
    for later in frames[1:]:  # inter frames carry no sequence header: nothing to refuse
        assert encoded_refusal(name, later, LIMITS) == (None, False)


def test_a_1080p_sps_is_read_as_1080_not_its_coded_1088():
    (first, *_) = encode("libx264", 1920, 1080, "yuv420p", n=1)
    assert encoded_refusal("H264", first, IngestLimits(1920, 1080))[0] is None
    assert "1920x1080" in (encoded_refusal("H264", first, IngestLimits(1920, 1079))[0] or "")


def test_garbage_headers_are_refused_not_raised():
    assert "unreadable" in (encoded_refusal("H264", b"\x00\x00\x00\x01\x67", LIMITS)[0] or "")
    assert "unreadable" in (encoded_refusal("VP8", b"\x00" * 12, LIMITS)[0] or "")
    assert "unreadable" in (encoded_refusal("AV1", b"\x00" * 12, LIMITS)[0] or "")


@pytest.mark.parametrize(
    ("size", "fmt", "refused"),
    [
        ((160, 90), "yuv420p", None),
        ((160, 90), "nv12", None),
        ((160, 90), "yuvj420p", None),
        ((162, 90), "yuv420p", "over the 160x90"),
        ((64, 48), "yuv444p", "yuv444p is not 4:2:0 at 8 bits"),
        ((64, 48), "yuv422p", "yuv422p is not 4:2:0"),
        ((64, 48), "yuv420p10le", "yuv420p10le is not 4:2:0 at 8 bits"),
        ((64, 48), "gray", "gray is not"),
    ],
)
def test_a_decoded_frame_is_judged_before_it_is_converted(size, fmt, refused):
    frame = av.VideoFrame.from_ndarray(picture(*size), "rgb24").reformat(format=fmt)
    reason = frame_refusal(frame, (160, 90))
    assert (reason is None) if refused is None else (refused in (reason or "")), reason


class EncodedTrack(MediaStreamTrack):
    """A publisher sending what its own libx264 encodes (aiortc packetizes av.Packets as they
    are), so it can send what aiortc's own encoder never would: 4:4:4, 10-bit."""

    kind = "video"

    def __init__(self, w: int, h: int, pix_fmt: str, fps: float = 15.0) -> None:
        super().__init__()
        self.size, self.pix_fmt, self.fps = (w, h), pix_fmt, fps
        self.codec = encoder("libx264", w, h, pix_fmt, gop=int(fps) // 2)
        self.k, self.t0 = 0, 0.0

    async def recv(self) -> av.Packet:
        if self.k == 0:
            self.t0 = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, self.t0 + self.k / self.fps - time.monotonic()))
            frame = av.VideoFrame.from_ndarray(picture(*self.size, self.k), "rgb24")
            frame = frame.reformat(format=self.pix_fmt)
            frame.pts, frame.time_base = int(self.k * 90000 / self.fps), Fraction(1, 90000)
            self.k += 1
            packets = self.codec.encode(frame)
            if packets:
                return packets[0]


def h264_only(tr) -> None:
    caps = RTCRtpSender.getCapabilities("video").codecs
    tr.setCodecPreferences([c for c in caps if c.mimeType == "video/H264"])


async def publish(http: aiohttp.ClientSession, base: str, track: MediaStreamTrack):
    pc = RTCPeerConnection(NO_STUN)
    h264_only(pc.addTransceiver(track, direction="sendonly"))
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(base + "/whip", data=pc.localDescription.sdp, headers=SDP) as r:
        body = await r.text()
        assert r.status == 201, body
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return pc


@pytest.fixture
def decoded(monkeypatch) -> list[tuple[int, int, str]]:
    """(width, height, format) of every frame aiortc's H.264 decoder makes in this test."""
    seen: list[tuple[int, int, str]] = []
    real = aiortc_h264.H264Decoder.decode

    def watched(self, encoded_frame):
        frames = real(self, encoded_frame)
        seen.extend((f.width, f.height, f.format.name) for f in frames)
        return frames

    monkeypatch.setattr(aiortc_h264.H264Decoder, "decode", watched)
    return seen


@pytest.mark.gpu
@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("size", "pix_fmt", "reason"),
    [
        ((128, 72), "yuv444p", "the stream announces 4:4:4 chroma"),
        ((128, 72), "yuv420p10le", "the stream announces 10-bit samples"),
        ((320, 180), "yuv420p", "the stream announces 320x180, over the 160x90 limit"),
    ],
)
async def test_a_publisher_refused_by_its_headers_never_reaches_the_decoder(
    size, pix_fmt, reason, decoded, caplog
):
    cfg = small_config(**{"source.uri": "webrtc", "source.max_width": 160, "source.max_height": 90})
    srv = await start_server(cfg)
    svc = srv.service
    try:
        async with aiohttp.ClientSession() as http:
            caplog.set_level(logging.WARNING, "stream.service")
            pc = await publish(http, srv.url, EncodedTrack(*size, pix_fmt))
            (session,) = svc.sessions.publishers
            deadline = time.monotonic() + 20
            while svc.sessions.publishers and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not svc.sessions.publishers, f"the {pix_fmt} {size} publisher was kept"
            assert decoded == [], "frames were decoded before the stream was refused"
            assert session.ingest is not None and reason in session.ingest.refused
            assert session.ingest.passed == 0
            logged = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
            assert any(reason in m for m in logged), logged
            await pc.close()
    finally:
        await srv.close()


@pytest.mark.gpu
@pytest.mark.timeout(90)
async def test_a_decoder_behind_the_stream_holds_a_bounded_queue(monkeypatch):
    """A decoder 5x slower than the stream (a big frame on a busy machine): the encoded frames
    waiting for it stay bounded, what is dropped is counted and a key frame asked for."""
    real = aiortc_h264.H264Decoder.decode

    def slow(self, encoded_frame):
        time.sleep(0.2)
        return real(self, encoded_frame)

    monkeypatch.setattr(aiortc_h264.H264Decoder, "decode", slow)
    srv = await start_server(small_config(**{"source.uri": "webrtc"}))
    svc = srv.service
    try:
        async with aiohttp.ClientSession() as http:
            pc = await publish(http, srv.url, EncodedTrack(128, 72, "yuv420p", fps=25.0))
            (session,) = svc.sessions.publishers
            (video,) = session.pc.getTransceivers()
            waiting = []
            for _ in range(40):
                await asyncio.sleep(0.1)
                waiting.append(getattr(video.receiver, patches.RECEIVER_QUEUE).qsize())
            assert max(waiting) <= IngestLimits().decode_queue, waiting
            counts = session.ingest
            assert counts is not None and counts.dropped_encoded > 0 and counts.passed > 0
            assert counts.keyframe_requests > 0
            assert svc.sessions.publishers, "a slow decoder is no reason to refuse"
            await pc.close()
    finally:
        await srv.close()


@pytest.mark.timeout(60)
async def test_decoded_frames_nobody_takes_are_bounded_newest_first():
    """Between aiortc's decoder thread and the source: a consumer that stalls finds the newest
    `frame_queue` frames, not every frame decoded meanwhile (aiortc's queue is unbounded)."""
    sender = RTCPeerConnection(NO_STUN)
    receiver = RTCPeerConnection(NO_STUN)
    try:
        h264_only(
            sender.addTransceiver(EncodedTrack(96, 54, "yuv420p", 30.0), direction="sendonly")
        )
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        (video,) = receiver.getTransceivers()
        answer_only(receiver, [video], "recvonly")
        refusals: list[str] = []
        counts = guard(video.receiver, IngestLimits(frame_queue=4), refusals.append)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        track = video.receiver.track
        deadline = time.monotonic() + 20
        while counts.dropped_decoded < 20 and not refusals and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # nobody reads the track meanwhile
            assert track._queue.qsize() <= 4
        assert counts.dropped_decoded >= 20 and not refusals
        dropped = counts.dropped_decoded  # frames 0 .. dropped-1 are gone (read before recv)
        first = (await recv_frames(track, 1, 5))[0]
        assert first.pts >= dropped * 90000 // 30  # the oldest kept, not the first decoded
    finally:
        await sender.close()
        await receiver.close()

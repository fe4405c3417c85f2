"""The RTP playout-delay extension (stream/webrtc/playout.py): a WHEP answer to an offer that
carries it (as Chrome's does) negotiates it back with the offer's id, and the video packets a
real aiortc viewer receives carry the configured bounds (0/100 ms by default; read from the
raw RTP, before aiortc parses it: aiortc itself does not know the extension)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import unpack_header_extensions

from stream.webrtc import patches, playout

from .rtc import NO_STUN, small_config, start_server

CHROME_ID = 12  # not one of aiortc's ids: the answer must echo the offer's


def _offer_with_playout_delay(sdp: str) -> str:
    """The offer as Chrome words it: the playout-delay extmap in the video section."""
    if playout.URI in sdp:
        sdp = re.sub(rf"a=extmap:\d+ {re.escape(playout.URI)}\r\n", "", sdp)
    head, video = sdp.split("m=video", 1)
    line = f"a=extmap:{CHROME_ID} {playout.URI}\r\n"
    video = video.replace("a=mid:", line + "a=mid:", 1)
    return head + "m=video" + video


def test_the_extension_bytes_are_the_drafts_12_bit_fields():
    assert playout.value(0, 0) == b"\x00\x00\x00"
    assert playout.value(*playout.DEFAULT_MS) == b"\x00\x00\x0a"
    assert playout.parse(playout.value(100, 400)) == (100, 400)
    assert playout.value(10, 40950) == bytes((0x00, 0x1F, 0xFF))
    with pytest.raises(ValueError):
        playout.value(50, 10)


async def _answer(url: str, offer: str) -> str:
    async with aiohttp.ClientSession() as http:
        r = await http.post(url + "/whep", data=offer, headers={"Content-Type": "application/sdp"})
        answer = await r.text()
        assert r.status == 201, answer
        return answer


async def test_off_in_the_config_the_answer_leaves_it_out():
    server = await start_server(small_config(**{"server.playout_delay_ms": []}))
    pc = RTCPeerConnection(NO_STUN)
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        answer = await _answer(server.url, _offer_with_playout_delay(pc.localDescription.sdp))
        assert "a=extmap:" in answer and playout.URI not in answer
    finally:
        await pc.close()
        await server.close()
        playout.uninstall()  # process-wide: later tests' servers get aiortc as it is


@pytest.mark.parametrize(
    "over,bounds", [({}, (0, 100)), ({"server.playout_delay_ms": [0, 0]}, (0, 0))]
)
async def test_whep_answer_negotiates_playout_delay_and_video_packets_carry_its_bounds(
    over, bounds
):
    server = await start_server(small_config(**over))
    pc = RTCPeerConnection(NO_STUN)
    try:
        pc.addTransceiver("video", direction="recvonly")
        got = asyncio.Event()
        pc.on("track", lambda track: got.set())
        await pc.setLocalDescription(await pc.createOffer())
        answer = await _answer(server.url, _offer_with_playout_delay(pc.localDescription.sdp))
        m = re.search(rf"a=extmap:(\d+) {re.escape(playout.URI)}", answer)
        assert m, "the answer does not negotiate playout-delay:\n" + answer
        assert int(m.group(1)) == CHROME_ID  # the offer's id, as RFC 8285 requires

        raw: list[bytes] = []
        transport = pc.getTransceivers()[0].receiver.transport
        inner = patches.require(transport, "_handle_rtp_data", "the viewer's raw RTP")

        async def keep(data: bytes, arrival_time_ms: int) -> None:
            raw.append(data)
            await inner(data, arrival_time_ms)

        transport._handle_rtp_data = keep
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.wait_for(got.wait(), 10)
        for _ in range(200):
            if len(raw) >= 10:
                break
            await asyncio.sleep(0.05)
        assert len(raw) >= 10, f"{len(raw)} RTP packets in 10 s"
        for data in raw:
            assert data[0] & 0x10, "an RTP packet without header extensions"
            cc = data[0] & 0x0F
            pos = 12 + 4 * cc
            profile = int.from_bytes(data[pos : pos + 2], "big")
            length = 4 * int.from_bytes(data[pos + 2 : pos + 4], "big")
            exts = dict(unpack_header_extensions(profile, data[pos + 4 : pos + 4 + length]))
            assert exts.get(CHROME_ID) == playout.value(*bounds), exts
            assert playout.parse(exts[CHROME_ID]) == bounds
    finally:
        await pc.close()
        await server.close()
        playout.uninstall()  # process-wide: later tests' servers get aiortc as it is

"""RFC 9725 details on WHIP (and the WHEP draft's same rules): the 201's ETag and
`Link: rel="ice-server"` headers, trickle ICE by PATCH with If-Match, and the refusals a
client can act on (412 stale tag, 422 ICE restart, 415, 404)."""

from __future__ import annotations

import re

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from stream.tools.soak.publisher import SceneTrack

from .rtc import NO_STUN, recv_frames, small_config, start_server, whep

pytestmark = [pytest.mark.gpu]

SDP = {"Content-Type": "application/sdp"}
FRAG = "application/trickle-ice-sdpfrag"


def _cfg(**over):
    return small_config(**{"source.uri": "webrtc", **over})


@pytest.mark.timeout(60)
async def test_the_201_carries_an_etag_and_link_headers_only_for_configured_servers():
    srv = await start_server(
        _cfg(
            **{
                "server.stun_servers": ["stun:stun.example.net:3478"],
                "server.turn_servers": ["turn:turn.example.net:3478?transport=udp"],
                "server.turn_username": "user",
                "server.turn_credential": 'pa"ss',
            }
        )
    )
    bare = await start_server(_cfg())
    try:
        async with aiohttp.ClientSession() as http:
            pc = RTCPeerConnection(NO_STUN)
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            for server, links in ((srv, 2), (bare, 0)):
                async with http.post(
                    server.url + "/whep", data=pc.localDescription.sdp, headers=SDP
                ) as r:
                    assert r.status == 201
                    assert re.fullmatch(r'"[0-9a-f]{16}"', r.headers["ETag"])
                    got = r.headers.getall("Link", [])
                    assert len(got) == links, got
                    if links:
                        assert got[0] == '<stun:stun.example.net:3478>; rel="ice-server"'
                        assert got[1] == (
                            '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; '
                            'username="user"; credential="pa\\"ss"; credential-type="password"'
                        )
                    async with http.delete(server.url + r.headers["Location"]) as d:
                        assert d.status == 200
            await pc.close()
    finally:
        await srv.close()
        await bare.close()


def _split(sdp: str) -> tuple[str, list[str]]:
    """The offer without its candidates, and the candidate lines."""
    lines = sdp.splitlines()
    cands = [x for x in lines if x.startswith("a=candidate:")]
    rest = [x for x in lines if not x.startswith(("a=candidate:", "a=end-of-candidates"))]
    return "\r\n".join(rest) + "\r\n", cands


@pytest.mark.timeout(90)
async def test_trickle_ice_by_patch_and_what_is_refused():
    srv = await start_server(_cfg(**{"source.width": 192, "source.height": 108}))
    pc = RTCPeerConnection(NO_STUN)
    try:
        async with aiohttp.ClientSession() as http:
            viewer = await whep(http, srv.url)
            pc.addTransceiver(SceneTrack(160, 90, 15), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            offer, cands = _split(pc.localDescription.sdp)
            assert cands, "aiortc gathered no candidate to trickle"
            async with http.post(srv.url + "/whip", data=offer, headers=SDP) as r:
                assert r.status == 201
                answer, loc, etag = await r.text(), r.headers["Location"], r.headers["ETag"]
            session = srv.service.sessions.by_id[loc.rsplit("/", 1)[1]]
            ice = session.pc.getTransceivers()[0].receiver.transport.transport
            assert ice.getRemoteCandidates() == []
            ufrag = re.search(r"a=ice-ufrag:(\S+)", offer).group(1)
            pwd = re.search(r"a=ice-pwd:(\S+)", offer).group(1)
            mid = re.search(r"a=mid:(\S+)", offer).group(1)
            frag = (
                f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\n"
                f"a=mid:{mid}\r\n" + "\r\n".join(cands) + "\r\na=end-of-candidates\r\n"
            )

            async def patch(body, **headers):
                async with http.patch(
                    srv.url + loc, data=body, headers={"Content-Type": FRAG, **headers}
                ) as r:
                    return r.status, await r.text()

            assert (await patch(frag, **{"If-Match": '"0000000000000000"'}))[0] == 412
            status, text = await patch(frag, **{"If-Match": "*"})
            assert status == 422 and "ICE restart" in text
            restart = frag.replace(f"a=ice-ufrag:{ufrag}", "a=ice-ufrag:new1")
            assert (await patch(restart, **{"If-Match": etag}))[0] == 422
            assert (await patch(frag))[0] == 428
            async with http.patch(
                srv.url + loc, data=frag, headers={"Content-Type": "text/plain", "If-Match": etag}
            ) as r:
                assert r.status == 415
            async with http.patch(
                srv.url + "/whep/" + loc.rsplit("/", 1)[1],
                data=frag,
                headers={"Content-Type": FRAG, "If-Match": etag},
            ) as r:
                assert r.status == 404  # a WHIP session is not reachable as WHEP
            assert ice.getRemoteCandidates() == [], "a refused PATCH added candidates"

            assert await patch(frag, **{"If-Match": etag}) == (204, "")
            added = {(c.ip, c.port) for c in ice.getRemoteCandidates()}
            sent = {(c.split()[4], int(c.split()[5])) for c in cands}
            assert sent <= added, (sent, added)

            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            frames = await recv_frames(viewer.tracks[0], 40, 30)
            assert sum((f.width, f.height) == (320, 180) for f in frames) >= 10
            await viewer.close(http, srv.url)
    finally:
        await pc.close()
        await srv.close()

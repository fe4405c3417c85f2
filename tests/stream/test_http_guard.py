"""The HTTP guard over real sockets: CORS same-origin by default, security headers, bodies read
whole with a size limit and a timeout, rate limits, a fixed set of metric labels, and the
viewer cap taken atomically."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from stream.auth import Role

from .rtc import NO_STUN, bearer, small_config, start_server, with_auth

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(90)]
SDP = {"Content-Type": "application/sdp"}


async def _offer() -> str:
    pc = RTCPeerConnection(NO_STUN)
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    await pc.close()
    return pc.localDescription.sdp


async def test_cross_origin_callers_are_refused_unless_listed():
    srv = await start_server(small_config(**{"server.cors_origins": ["https://ok.example"]}))
    try:
        async with aiohttp.ClientSession() as http:
            evil = {"Origin": "https://evil.example"}
            pre = {**evil, "Access-Control-Request-Method": "POST"}
            async with http.options(srv.url + "/api/mode", headers=pre) as r:
                assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
            # a "simple" POST needs no preflight: refused all the same
            async with http.post(
                srv.url + "/api/mode", data="{}", headers={**evil, "Content-Type": "text/plain"}
            ) as r:
                assert r.status == 403
            async with http.delete(srv.url + "/whep/abc", headers=evil) as r:
                assert r.status == 403
            ok = {"Origin": "https://ok.example", "Access-Control-Request-Method": "POST"}
            async with http.options(srv.url + "/whep", headers=ok) as r:
                assert r.status == 204
                assert r.headers["Access-Control-Allow-Origin"] == "https://ok.example"
                assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
            # the page's own origin needs nothing
            same = {"Origin": srv.url, "Content-Type": "application/json"}
            async with http.post(
                srv.url + "/api/mode", data='{"mode": "bicubic"}', headers=same
            ) as r:
                assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    finally:
        await srv.close()


async def test_every_answer_carries_the_security_headers():
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/", "/healthz", "/static/app.js", "/nope"):
                async with http.get(srv.url + path) as r:
                    h = r.headers
                    assert "frame-ancestors 'none'" in h["Content-Security-Policy"], path
                    assert h["X-Content-Type-Options"] == "nosniff"
                    assert h["Referrer-Policy"] == "no-referrer"
                    assert h["X-Frame-Options"] == "DENY"
    finally:
        await srv.close()


async def test_bodies_are_read_whole_with_a_limit_and_a_timeout():
    srv = await start_server(
        small_config(**{"server.max_body_bytes": 4096, "server.body_timeout_s": 1.0})
    )
    host, port = srv.url.removeprefix("http://").split(":")
    try:
        async with aiohttp.ClientSession() as http:

            async def chunks():
                for _ in range(10):
                    yield b"a=x\r\n" * 200  # 1000 bytes a chunk, no Content-Length

            async with http.post(srv.url + "/whep", data=chunks(), headers=SDP) as r:
                assert r.status == 413, await r.text()
            # an offer split over several writes is read whole
            offer = (await _offer()).encode()

            async def halves():
                yield offer[:100]
                await asyncio.sleep(0.2)
                yield offer[100:]

            async with http.post(srv.url + "/whep", data=halves(), headers=SDP) as r:
                assert r.status == 201, await r.text()
                async with http.delete(srv.url + r.headers["Location"]) as d:
                    assert d.status == 200
        # headers, then a body that never comes: 408 within the timeout
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /whep HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n"
            b"Content-Length: 2000\r\n\r\nv=0\r\n"
        )
        await writer.drain()
        t0 = time.monotonic()
        head = await asyncio.wait_for(reader.readline(), 10)
        assert b" 408 " in head and time.monotonic() - t0 < 5
        writer.close()
    finally:
        await srv.close()


async def test_posts_are_rate_limited_per_token_with_retry_after(tmp_path):
    cfg, auth = with_auth(
        small_config(**{"server.rate_limit_per_s": 1.0, "server.rate_limit_burst": 5}), tmp_path
    )
    srv = await start_server(cfg)
    flood, calm = auth.mint(Role.VIEWER, 300), auth.mint(Role.VIEWER, 300)
    try:
        async with aiohttp.ClientSession() as http:
            statuses = []
            for _ in range(12):
                async with http.post(
                    srv.url + "/whep", data="nonsense", headers={**SDP, **bearer(flood)}
                ) as r:
                    statuses.append(r.status)
                    if r.status == 429:
                        assert int(r.headers["Retry-After"]) >= 1
            assert statuses.count(429) >= 6 and statuses[:5] == [400] * 5
            # another token is not held back by the flood
            async with http.post(
                srv.url + "/whep", data=await _offer(), headers={**SDP, **bearer(calm)}
            ) as r:
                assert r.status == 201
            # nor are requests without a token a way around it: they count per address
            codes = []
            for _ in range(10):
                async with http.post(srv.url + "/whep", data="x", headers=SDP) as r:
                    codes.append(r.status)
            assert 401 in codes and 429 in codes
    finally:
        await srv.close()


async def test_metric_labels_are_the_routes_not_the_paths():
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            for k in range(50):
                async with http.get(srv.url + f"/scan/{k}/admin.php") as r:
                    assert r.status == 404
            async with http.delete(srv.url + "/whep/0123") as r:
                assert r.status == 404
            async with http.get(srv.url + "/metrics") as r:
                text = await r.text()
        from prometheus_client.parser import text_string_to_metric_families

        labels = {
            (s.labels["path"], s.labels["status"])
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name == "framesmith_bad_requests_total"
        }
        assert labels == {("unmatched", "404"), ("/whep/{id}", "404")}
    finally:
        await srv.close()


async def test_the_viewer_cap_holds_under_concurrent_posts_and_only_connected_viewers_count():
    srv = await start_server(small_config(**{"server.max_viewers": 2}))
    try:
        async with aiohttp.ClientSession() as http:

            async def post() -> int:
                async with http.post(srv.url + "/whep", data=await _offer(), headers=SDP) as r:
                    return r.status

            statuses = await asyncio.gather(*(post() for _ in range(6)))
            assert sorted(statuses) == [201, 201, 503, 503, 503, 503]
            # offers whose peers never connect are sessions, not viewers
            assert len(srv.service.sessions.viewers) == 2
            async with http.get(srv.url + "/metrics") as r:
                assert "\nframesmith_viewers 0.0\n" in await r.text()
            async with http.get(srv.url + "/healthz") as r:
                assert (await r.json())["viewers"] == 0
    finally:
        await srv.close()

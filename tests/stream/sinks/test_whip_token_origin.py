"""The WHIP push's bearer token goes only to the origin of the endpoint it posted to: a WHIP
server (real aiohttp, 127.0.0.1) that answers with a Location on another origin (a second real
server, another port) gets the session's DELETE there without the token."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from stream import config as config_mod
from stream.encode import SharedEncoder
from stream.sinks import parse
from stream.sinks.whip import WhipSink, same_origin

TOKEN = "publisher-token-SECRET"


async def _recorder(
    seen: list[tuple[str, str, str]], location: str = "", redirect: str = ""
) -> web.AppRunner:
    """A server that records (method, path, Authorization) of every request; POST answers
    201 with `location` (or one on itself) and a body no peer accepts, so the push gives up
    on the session at once and ends it with a DELETE."""

    async def any_request(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.headers.get("Authorization", "")))
        if request.method == "POST" and redirect:
            raise web.HTTPTemporaryRedirect(redirect)
        if request.method == "POST":
            await request.read()
            return web.Response(
                status=201,
                text="not an SDP answer",
                content_type="application/sdp",
                headers={"Location": location or "/session/1"},
            )
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_request)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def _port(runner: web.AppRunner) -> int:
    (site,) = runner.sites
    return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def _push_once(endpoint: str, seen: list) -> None:
    cfg = config_mod.load(None, {"push.connect_timeout_s": 5.0, "push.backoff_max_s": 30.0})
    sink = WhipSink(
        parse(f"whip+{endpoint}"), "vp8", SharedEncoder("vp8"), cfg.push, cfg.server, TOKEN
    )
    sink.start()
    try:
        for _ in range(200):
            if any(m == "DELETE" for m, _, _ in seen):
                break
            await asyncio.sleep(0.05)
    finally:
        await sink.stop()


def test_same_origin_compares_scheme_host_and_port():
    assert same_origin("http://a:80/x", "http://a/whip")
    assert not same_origin("http://a:81/x", "http://a/whip")
    assert not same_origin("https://a/x", "http://a/whip")
    assert not same_origin("http://b/x", "http://a/whip")
    assert not same_origin("http://a:99999/x", "http://a/whip")


@pytest.mark.timeout(60)
async def test_whip_token_never_goes_to_a_location_on_another_origin():
    foreign_seen: list[tuple[str, str, str]] = []
    foreign = await _recorder(foreign_seen)
    endpoint_seen: list[tuple[str, str, str]] = []
    other = f"http://127.0.0.1:{_port(foreign)}/session/1"
    endpoint = await _recorder(endpoint_seen, location=other)
    try:
        await _push_once(f"http://127.0.0.1:{_port(endpoint)}/whip", foreign_seen)
    finally:
        await endpoint.cleanup()
        await foreign.cleanup()
    assert ("POST", "/whip", f"Bearer {TOKEN}") in endpoint_seen  # the endpoint gets it
    deletes = [s for s in foreign_seen if s[0] == "DELETE"]
    assert deletes, foreign_seen
    assert all(auth == "" for _, _, auth in foreign_seen), foreign_seen


@pytest.mark.timeout(60)
async def test_whip_token_still_ends_a_session_on_the_endpoints_origin():
    seen: list[tuple[str, str, str]] = []
    endpoint = await _recorder(seen)  # Location: /session/1 on itself
    try:
        await _push_once(f"http://127.0.0.1:{_port(endpoint)}/whip", seen)
    finally:
        await endpoint.cleanup()
    assert ("DELETE", "/session/1", f"Bearer {TOKEN}") in seen, seen


@pytest.mark.timeout(60)
async def test_whip_token_does_not_follow_a_redirect_to_another_origin():
    """RFC 9725 allows a 307 to another server: neither the offer nor the session's DELETE
    there carries the token (the Location is resolved against where the answer came from)."""
    foreign_seen: list[tuple[str, str, str]] = []
    foreign = await _recorder(foreign_seen)  # answers with Location: /session/1, on itself
    endpoint_seen: list[tuple[str, str, str]] = []
    endpoint = await _recorder(endpoint_seen, redirect=f"http://127.0.0.1:{_port(foreign)}/whip")
    try:
        await _push_once(f"http://127.0.0.1:{_port(endpoint)}/whip", foreign_seen)
    finally:
        await endpoint.cleanup()
        await foreign.cleanup()
    assert ("POST", "/whip", f"Bearer {TOKEN}") in endpoint_seen
    assert [m for m, _, _ in foreign_seen][:2] == ["POST", "DELETE"], foreign_seen
    assert all(auth == "" for _, _, auth in foreign_seen), foreign_seen

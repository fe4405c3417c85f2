"""Attacks on the HTTP side, tried over real sockets against a running server (issue 25):
DNS rebinding, cross-site WebSockets and reads, floods of GETs and upgrades, a non-ASCII
token, one token taking every session, tokens that expire or are revoked while their sessions
and WebSockets live on, and what /healthz tells anyone."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from stream import auth as auth_mod
from stream import config as config_mod
from stream.auth import Role, TokenAuthority

from .rtc import bearer, small_config, start_server, whep

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(90)]
JSON = {"Content-Type": "application/json"}


def _authed(tmp_path, **over) -> tuple[config_mod.Config, TokenAuthority]:
    """A config with [auth] (secret and revocation list in tmp_path) and its authority."""
    secret = tmp_path / "auth.secret"
    secret.write_text("0123456789abcdef0123456789abcdef")
    cfg = small_config(
        **{"auth.secret_file": str(secret), "auth.revoked_file": str(tmp_path / "revoked")},
        **over,
    )
    return cfg, TokenAuthority.from_file(secret, revoked_file=cfg.auth.revoked_file)


async def _until(check, timeout: float = 20.0) -> None:
    """Poll `check` until true; generous: the server's checks run once a second, on a busy
    machine later."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the bound"
        await asyncio.sleep(0.1)


async def test_a_rebound_host_name_is_refused_and_origin_is_judged_by_trusted_names():
    srv = await start_server(small_config(**{"server.allowed_hosts": ["game.example"]}))
    port = srv.url.rsplit(":", 1)[1]
    evil = f"rebind.attacker.example:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            # the rebinding page: its own name as Host and as Origin (the old check passed it)
            page = {"Host": evil, "Origin": f"http://{evil}", **JSON}
            async with http.post(
                srv.url + "/api/mode", data='{"mode": "bicubic"}', headers=page
            ) as r:
                assert r.status == 421, await r.text()
            for path in ("/api/stats", "/", "/healthz"):
                async with http.get(srv.url + path, headers={"Host": evil}) as r:
                    assert r.status == 421, path
            assert srv.service.mode == "bilinear"
            # the names it answers to: loopback, IP literals, the configured ones
            for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"game.example:{port}"):
                async with http.get(srv.url + "/api/stats", headers={"Host": host}) as r:
                    assert r.status == 200, host
            # Origin is judged against those names and the port addressed, not copied Host
            for origin in (f"http://{evil}", f"http://localhost:{int(port) + 1}"):
                hdrs = {"Origin": origin, **JSON}
                async with http.post(srv.url + "/api/mode", data="{}", headers=hdrs) as r:
                    assert r.status == 403, origin
            same = {"Origin": f"http://localhost:{port}", **JSON}
            async with http.post(
                srv.url + "/api/mode", data='{"mode": "bicubic"}', headers=same
            ) as r:
                assert r.status == 200
    finally:
        await srv.close()


async def test_cross_site_websockets_and_reads_are_refused():
    srv = await start_server(small_config())  # open: every caller an admin
    evil = {"Origin": "https://evil.example"}
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(srv.url + "/api/input", headers=evil)
            assert e.value.status == 403
            for path in ("/api/stats", "/api/ice", "/metrics"):
                async with http.get(srv.url + path, headers=evil) as r:
                    assert r.status == 403, path
            # the page and its files stay readable (a link from anywhere opens the viewer)
            async with http.get(srv.url + "/", headers=evil) as r:
                assert r.status == 200
            ws = await http.ws_connect(srv.url + "/api/input", headers={"Origin": srv.url})
            assert not ws.closed
            await ws.close()
    finally:
        await srv.close()


async def test_gets_and_upgrades_are_rate_limited_per_token(tmp_path):
    cfg, auth = _authed(
        tmp_path, **{"server.get_rate_limit_per_s": 1.0, "server.get_rate_limit_burst": 5}
    )
    srv = await start_server(cfg)
    flood, calm = auth.mint(Role.ADMIN, 300), auth.mint(Role.ADMIN, 300)
    try:
        async with aiohttp.ClientSession() as http:
            codes = []
            for _ in range(12):
                async with http.get(srv.url + "/api/stats", headers=bearer(flood)) as r:
                    codes.append(r.status)
            assert codes[:5] == [200] * 5 and codes.count(429) >= 6
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(srv.url + "/api/input", headers=bearer(flood))
            assert e.value.status == 429
            async with http.get(srv.url + "/api/stats", headers=bearer(calm)) as r:
                assert r.status == 200
            # the page's files are not counted
            for _ in range(12):
                async with http.get(srv.url + "/static/app.js") as r:
                    assert r.status == 200
    finally:
        await srv.close()


async def test_a_non_ascii_bearer_token_is_a_401(tmp_path):
    cfg, _ = _authed(tmp_path)
    srv = await start_server(cfg)
    host, port = srv.url.removeprefix("http://").split(":")
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + "Authorization: Bearer fs1.payload.\u00e9t\u00e9\r\n".encode()
            + b"Connection: close\r\n\r\n"
        )
        head = (await asyncio.wait_for(reader.read(4096), 30)).split(b"\r\n")
        assert head[0].startswith(b"HTTP/1.1 401"), head[0]
        writer.close()
    finally:
        await srv.close()


async def test_one_token_holds_a_bounded_number_of_sessions(tmp_path):
    cfg, auth = _authed(tmp_path, **{"server.max_sessions_per_token": 2})
    srv = await start_server(cfg)
    greedy, other = auth.mint(Role.VIEWER, 300), auth.mint(Role.VIEWER, 300)
    viewers = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                viewers.append(await whep(http, srv.url, token=greedy))
            with pytest.raises(AssertionError, match="429"):
                await whep(http, srv.url, token=greedy)
            viewers.append(await whep(http, srv.url, token=other))
            # a place comes back when a session ends
            await viewers.pop(0).close(http, srv.url)
            viewers.append(await whep(http, srv.url, token=greedy))
            for v in viewers:
                await v.close(http, srv.url)
    finally:
        await srv.close()


async def test_sessions_and_websockets_end_when_their_token_expires(tmp_path):
    cfg, auth = _authed(tmp_path)
    srv = await start_server(cfg)
    sessions = srv.service.sessions
    try:
        async with aiohttp.ClientSession() as http:
            short = auth.mint(Role.VIEWER, 3)
            lasting = await whep(http, srv.url, token=auth.mint(Role.VIEWER, 300))
            v = await whep(http, srv.url, token=short)
            ws = await http.ws_connect(
                srv.url + "/api/input", headers=bearer(auth.mint(Role.PUBLISHER, 3))
            )
            assert len(sessions.by_id) == 2
            msg = await asyncio.wait_for(ws.receive(), 10)  # the hello
            assert msg.type == aiohttp.WSMsgType.TEXT
            await _until(lambda: len(sessions.by_id) == 1)
            assert lasting.location.rsplit("/", 1)[1] in sessions.by_id
            while (msg := await asyncio.wait_for(ws.receive(), 20)).type is aiohttp.WSMsgType.TEXT:
                pass
            assert ws.closed
            await v.close()
            await lasting.close(http, srv.url)
    finally:
        await srv.close()


async def test_a_revoked_token_is_refused_and_its_sessions_end(tmp_path):
    cfg, auth = _authed(tmp_path)
    a = cfg.auth
    (tmp_path / "serve.toml").write_text(
        f'[auth]\nsecret_file = "{a.secret_file}"\nrevoked_file = "{a.revoked_file}"\n'
    )
    srv = await start_server(cfg)
    sessions = srv.service.sessions
    leaked, kept = auth.mint(Role.VIEWER, 300), auth.mint(Role.VIEWER, 300)
    try:
        async with aiohttp.ClientSession() as http:
            gone = await whep(http, srv.url, token=leaked)
            stays = await whep(http, srv.url, token=kept)
            (tmp_path / "leaked").write_text(leaked)
            argv = ["--config", str(tmp_path / "serve.toml"), "--revoke", str(tmp_path / "leaked")]
            assert auth_mod.main(argv) == 0
            assert leaked not in (tmp_path / "revoked").read_text()  # its nonce only
            await _until(lambda: len(sessions.by_id) == 1)
            assert stays.location.rsplit("/", 1)[1] in sessions.by_id
            async with http.get(srv.url + "/api/ice", headers=bearer(leaked)) as r:
                assert r.status == 401 and "revoked" in (await r.json())["error"]
            async with http.get(srv.url + "/api/ice", headers=bearer(kept)) as r:
                assert r.status == 200
            await gone.close()
            await stays.close(http, srv.url)
    finally:
        await srv.close()


async def test_healthz_names_neither_the_gpu_nor_the_source_beyond_its_kind_and_size():
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(srv.url + "/healthz") as r:
                h = await r.json()
            assert "device" not in h
            assert set(h["source"]) == {"kind", "state", "width", "height", "fps", "frames"}
            async with http.get(srv.url + "/api/stats") as r:  # admins see it all
                assert (await r.json())["device"]
    finally:
        await srv.close()

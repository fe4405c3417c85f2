"""Who may do what, over real HTTP against a real server (aiohttp + aiortc in this process):
bearer tokens (401 missing/forged/expired, 403 wrong role), session ownership, the roles on
the data channel, and `python -m stream token`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from stream.auth import AuthError, Role, TokenAuthority

from .rtc import NO_STUN, bearer, recv_frames, small_config, start_server, whep, with_auth

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"0123456789abcdef0123456789abcdef"


# -- tokens -----------------------------------------------------------------------------------


def test_a_token_carries_its_role_and_expiry():
    auth = TokenAuthority(SECRET)
    grant = auth.verify(auth.mint(Role.PLAYER, 60))
    assert grant.role is Role.PLAYER and 55 < grant.expires - time.time() <= 60
    assert len(grant.nonce) == 32  # 128 random bits


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # forged mac
        lambda t: "fs2" + t[3:],  # other format
        lambda t: t.replace(".", "", 1),
        lambda t: t + "x" * 600,
        lambda t: "",
    ],
)
def test_a_forged_or_malformed_token_is_refused(mangle):
    auth = TokenAuthority(SECRET)
    with pytest.raises(AuthError):
        auth.verify(mangle(auth.mint(Role.ADMIN, 60)))


def test_another_servers_token_and_an_expired_token_are_refused():
    token = TokenAuthority(b"another secret of 32 bytes!!!!!!").mint(Role.ADMIN, 60)
    with pytest.raises(AuthError, match="invalid"):
        TokenAuthority(SECRET).verify(token)
    auth = TokenAuthority(SECRET)
    old = auth.mint(Role.ADMIN, 10, now=time.time() - 60)
    with pytest.raises(AuthError, match="expired"):
        auth.verify(old)


def test_a_short_secret_is_refused(tmp_path):
    (tmp_path / "s").write_text("short")
    with pytest.raises(ValueError, match="at least 16"):
        TokenAuthority.from_file(tmp_path / "s")


def test_the_token_command_prints_the_token_alone(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'[auth]\nsecret_file = "{secret}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "stream", "token", "--config", str(cfg), "--role", "publisher",
         "--ttl", "120"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert out.stdout == token + "\n"
    assert TokenAuthority(SECRET).verify(token).role is Role.PUBLISHER
    cfg.write_text("[server]\n")
    out = subprocess.run(
        [sys.executable, "-m", "stream", "token", "--config", str(cfg), "--role", "admin"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "no [auth] secret_file" in out.stderr


# -- roles over HTTP --------------------------------------------------------------------------


async def _offer(direction: str = "recvonly") -> str:
    pc = RTCPeerConnection(NO_STUN)
    pc.addTransceiver("video", direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    await pc.close()
    return pc.localDescription.sdp


async def _post(http, url, body, token=None, path="/whep"):
    headers = {"Content-Type": "application/sdp", **bearer(token)}
    async with http.post(url + path, data=body, headers=headers) as r:
        return r.status, await r.text(), r.headers


@pytest.mark.gpu
@pytest.mark.timeout(120)
async def test_roles_decide_who_may_watch_publish_administer_and_end_sessions(tmp_path):
    cfg, auth = with_auth(small_config(**{"source.uri": "webrtc"}), tmp_path)
    viewer, viewer2 = auth.mint(Role.VIEWER, 300), auth.mint(Role.VIEWER, 300)
    publisher, admin = auth.mint(Role.PUBLISHER, 300), auth.mint(Role.ADMIN, 300)
    srv = await start_server(cfg)
    try:
        async with aiohttp.ClientSession() as http:
            offer = await _offer()
            # no token, a forged one, an expired one: 401 with a Bearer challenge
            for token in (None, viewer[:-3] + "xyz", auth.mint(Role.ADMIN, 1, time.time() - 5)):
                status, body, headers = await _post(http, srv.url, offer, token)
                assert status == 401, body
                assert headers["WWW-Authenticate"].startswith("Bearer")
            # a viewer watches; cannot publish, switch modes, read stats or metrics
            status, body, headers = await _post(http, srv.url, offer, viewer)
            assert status == 201, body
            mine = headers["Location"]
            status, body, _ = await _post(http, srv.url, await _offer("sendonly"), viewer, "/whip")
            assert status == 403 and "viewer role may not publish" in body
            for method, path in (("GET", "/api/stats"), ("GET", "/metrics"), ("POST", "/api/mode")):
                async with http.request(method, srv.url + path, headers=bearer(viewer)) as r:
                    assert r.status == 403, (method, path)
            # a publisher may not watch
            status, _, _ = await _post(http, srv.url, offer, publisher)
            assert status == 403
            # another viewer cannot end my session; I can; an admin can end anyone's
            status, _, headers = await _post(http, srv.url, offer, viewer2)
            theirs = headers["Location"]
            async with http.delete(srv.url + theirs, headers=bearer(viewer)) as r:
                assert r.status == 403
            async with http.delete(srv.url + mine, headers=bearer(viewer)) as r:
                assert r.status == 200
            async with http.delete(srv.url + theirs, headers=bearer(admin)) as r:
                assert r.status == 200
            async with http.get(srv.url + "/api/stats", headers=bearer(admin)) as r:
                assert r.status == 200 and (await r.json())["sessions"] == []
            async with http.get(srv.url + "/healthz") as r:  # public, and says little
                health = await r.json()
                assert r.status == 200 and "uri" not in health["source"]
            async with http.get(srv.url + "/api/ice") as r:
                assert r.status == 401  # TURN credentials only for a token holder
    finally:
        await srv.close()


@pytest.mark.gpu
@pytest.mark.timeout(120)
async def test_only_players_send_input_and_hostile_messages_never_close_a_session(tmp_path):
    cfg, auth = with_auth(small_config(), tmp_path)
    srv = await start_server(cfg)
    svc = srv.service
    try:
        async with aiohttp.ClientSession() as http:
            watcher = await whep(http, srv.url, datachannel=True, token=auth.mint(Role.VIEWER, 300))
            player = await whep(http, srv.url, datachannel=True, token=auth.mint(Role.PLAYER, 300))
            for v in (watcher, player):
                await recv_frames(v.tracks[0], 2, 30)
                while v.channel.readyState != "open":
                    await asyncio.sleep(0.05)
            click = json.dumps(
                {"type": "input", "kind": "mousedown", "x": 0.5, "y": 0.5, "button": 0}
            )
            watcher.channel.send(click)
            hostile = [
                "[" * 1100,  # a RecursionError inside json
                "{" * 5000,  # over the size limit
                json.dumps({"type": "input", "kind": "mousedown", "x": 7}),  # out of range
                json.dumps({"type": "input", "kind": "keydown", "key": "k" * 100}),
                json.dumps({"type": "input", "kind": "warp"}),
                json.dumps({"type": "input", "kind": "mousemove", "x": 0.1, "evil": 1}),
                json.dumps({"type": "nope"}),
                json.dumps([1, 2]),
                "x" * 10_000,
            ]
            for msg in hostile:
                player.channel.send(msg)
            player.channel.send(click)
            await asyncio.sleep(1.0)
            by_role = {s.role: s for s in svc.sessions.viewers}
            refused = by_role[Role.VIEWER].control.counters.refused
            assert refused == {"input: not for the viewer role": 1}
            refused = by_role[Role.PLAYER].control.counters.refused
            assert sum(refused.values()) == len(hostile), refused
            assert refused["not JSON"] == 1 and refused["not text or too big"] == 2
            assert refused["input: not a valid event"] == 4
            assert svc.input_events == 1  # the player's one good click
            # both sessions still get frames
            for v in (watcher, player):
                assert len(await recv_frames(v.tracks[0], 5, 20)) == 5
            # a report is kept flat and bounded, and dropped with its session
            player.channel.send(json.dumps({"type": "report", "fps": 30, "nested": {"a": [1]},
                                            **{f"k{i}": i for i in range(100)}}))  # fmt: skip
            await asyncio.sleep(0.5)
            report = by_role[Role.PLAYER].control.report
            assert report["fps"] == 30 and "nested" not in report and len(report) == 40
            sid = by_role[Role.PLAYER].id
            assert sid in svc.reports
            await player.close(http, srv.url)
            await asyncio.sleep(0.5)
            assert sid not in svc.reports
            await watcher.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.gpu
@pytest.mark.timeout(60)
async def test_data_channel_messages_are_rate_limited_per_type(tmp_path):
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url, datachannel=True)
            await recv_frames(v.tracks[0], 2, 30)
            while v.channel.readyState != "open":
                await asyncio.sleep(0.05)
            counters = srv.service.sessions.viewers[0].control.counters
            before, t0 = counters.received, time.monotonic()
            for _ in range(200):
                v.channel.send(json.dumps({"type": "ping", "t": 1}))
            # every ping read by the server, however long a busy machine takes (no fixed sleep)
            while counters.received - before < 200:
                assert time.monotonic() - t0 < 30, counters.received - before
                await asyncio.sleep(0.02)
            span = time.monotonic() - t0
            accepted = 200 - counters.refused.get("ping: over its rate", 0)
            # a bucket of 10 refilled at 5 a second: its burst, plus 5 for each second the 200
            # took to arrive (a fraction of one on a quiet machine: at most ~16 of the 200)
            assert 10 <= accepted <= 10 + 5 * span + 1, (accepted, span)
            while len(pongs := [m for m in v.messages if '"pong"' in m]) < accepted:
                assert time.monotonic() - t0 < 30, (len(pongs), accepted)
                await asyncio.sleep(0.02)
            assert len(pongs) == accepted  # each ping let through is answered, no more
            await v.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.gpu
@pytest.mark.timeout(60)
async def test_the_input_websocket_is_for_publishers(tmp_path):
    cfg, auth = with_auth(small_config(), tmp_path)
    srv = await start_server(cfg)
    try:
        async with aiohttp.ClientSession() as http:
            for token, status in ((None, 401), (auth.mint(Role.PLAYER, 60), 403)):
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await http.ws_connect(srv.url + "/api/input", headers=bearer(token))
                assert e.value.status == status
            ws = await http.ws_connect(
                srv.url + "/api/input", headers=bearer(auth.mint(Role.PUBLISHER, 60))
            )
            assert not ws.closed
            await ws.close()
    finally:
        await srv.close()

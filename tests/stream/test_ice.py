"""ICE settings (stream/webrtc/ice.py): TURN credentials, UDP port range, public address."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc import sdp as aiortc_sdp

from stream import config as config_mod
from stream.webrtc.ice import browser_ice, configure_network, ice_servers, turn_credentials


@pytest.fixture
def restore_network():
    yield
    configure_network()


def _server(tmp_path, **values) -> config_mod.ServerConfig:
    return config_mod.load(None, {f"server.{k}": v for k, v in values.items()}).server


def test_static_turn_credentials_from_file(tmp_path):
    secret = tmp_path / "turn_credential"
    secret.write_text("s3cret\n")
    srv = _server(
        tmp_path,
        stun_servers=["stun:stun.example.org:3478"],
        turn_servers=["turn:turn.example.org:3478?transport=udp"],
        turn_username="fs",
        turn_credential_file=str(secret),
    )
    assert browser_ice(srv) == {
        "iceServers": [
            {"urls": ["stun:stun.example.org:3478"]},
            {
                "urls": ["turn:turn.example.org:3478?transport=udp"],
                "username": "fs",
                "credential": "s3cret",
            },
        ]
    }
    assert [s.urls for s in ice_servers(srv)] == [
        ["stun:stun.example.org:3478"],
        ["turn:turn.example.org:3478?transport=udp"],
    ]


def test_minted_turn_credentials_follow_the_turn_rest_scheme(tmp_path):
    secret = tmp_path / "turn_secret"
    secret.write_text("shared")
    srv = _server(
        tmp_path, turn_servers=["turn:t:3478"], turn_secret_file=str(secret), turn_ttl_s=600
    )
    user, cred = turn_credentials(srv, now=1000.0)
    assert user == "1600:framesmith"
    assert (
        cred == base64.b64encode(hmac.new(b"shared", user.encode(), hashlib.sha1).digest()).decode()
    )


def test_no_servers_no_ice():
    assert browser_ice(config_mod.Config().server) == {"iceServers": []}


async def _answer_candidates() -> list[aiortc_sdp.Candidate]:
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        offerer.addTransceiver("video", direction="recvonly")
        offerer.createDataChannel("c")
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        desc = aiortc_sdp.SessionDescription.parse(answerer.localDescription.sdp)
        return [c for m in desc.media for c in m.ice_candidates]
    finally:
        await offerer.close()
        await answerer.close()


async def test_port_range_and_public_address(restore_network):
    configure_network(41000, 41031, "203.0.113.7")
    cands = await _answer_candidates()
    hosts = [c for c in cands if c.type == "host"]
    assert hosts and all(41000 <= c.port <= 41031 for c in hosts), cands
    public = [c for c in cands if c.type == "srflx" and c.ip == "203.0.113.7"]
    v4 = [c for c in hosts if ":" not in c.ip]
    assert {c.port for c in public} == {c.port for c in v4}
    assert all(c.relatedAddress for c in public)


async def test_default_ports_are_ephemeral(restore_network):
    configure_network()
    cands = await _answer_candidates()
    assert not any(c.type == "srflx" for c in cands)


@pytest.mark.gpu
@pytest.mark.timeout(90)
async def test_service_uses_the_ice_settings(tmp_path, monkeypatch, restore_network):
    """/api/ice hands viewers minted TURN credentials; the answer's host candidates use the
    port range and the public address; Location is built on public_url."""
    import aiohttp

    from .rtc import recv_frames, small_config, start_server, whep

    secret = tmp_path / "turn_secret"
    secret.write_text("shared")
    monkeypatch.setenv("FS_TEST_POD", "pod-3")
    srv = await start_server(
        small_config(
            **{
                "server.turn_servers": ["turn:127.0.0.1:9?transport=udp"],  # nothing listens there
                "server.turn_secret_file": str(secret),
                "server.ice_port_min": 42000,
                "server.ice_port_max": 42063,
                "server.ice_public_address": "198.51.100.4",
                "server.public_url": "http://$FS_TEST_POD.example:8080",
            }
        )
    )
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(srv.url + "/api/ice") as r:
                ice = await r.json()
            (turn,) = ice["iceServers"]
            assert turn["urls"] == ["turn:127.0.0.1:9?transport=udp"]
            # minted per token: the TURN user names it (an open server's is "open")
            assert turn["username"].endswith(":open") and turn["credential"]
            offer_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            offer_pc.addTransceiver("video", direction="recvonly")
            await offer_pc.setLocalDescription(await offer_pc.createOffer())
            async with http.post(
                srv.url + "/whep",
                data=offer_pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp"},
            ) as r:
                answer = await r.text()
                assert r.status == 201, answer
                location = r.headers["Location"]
                links = r.headers.getall("Link")
            await offer_pc.close()
            assert location.startswith("http://pod-3.example:8080/whep/")
            # RFC 9725: the ICE servers on the 201, TURN with this session's own credentials
            (link,) = links
            sid = location.rsplit("/", 1)[1]
            assert link.startswith('<turn:127.0.0.1:9?transport=udp>; rel="ice-server"; username="')
            assert f':{sid[:16]}"' in link and 'credential-type="password"' in link
            cands = [
                c
                for m in aiortc_sdp.SessionDescription.parse(answer).media
                for c in m.ice_candidates
            ]
            hosts = [c for c in cands if c.type == "host"]
            assert hosts and all(42000 <= c.port <= 42063 for c in hosts), cands
            assert any(c.type == "srflx" and c.ip == "198.51.100.4" for c in cands), cands
            async with http.delete(srv.url + location.split(":8080", 1)[1]) as r:
                assert r.status == 200
            # and a real viewer still gets frames over the restricted ports
            v = await whep(http, srv.url)
            try:
                assert len(await recv_frames(v.tracks[0], 3, timeout=20)) == 3
            finally:
                await v.close()
    finally:
        await srv.close()


@pytest.mark.parametrize("placeholder", ["change-me", "CHANGE-ME\n", "changeme", "secret"])
def test_a_placeholder_turn_secret_is_refused(tmp_path, placeholder):
    """docker/env.example's old TURN_SECRET=change-me: anyone could mint TURN credentials."""
    secret = tmp_path / "turn_secret"
    secret.write_text(placeholder)
    srv = _server(tmp_path, turn_servers=["turn:t:3478"], turn_secret_file=str(secret))
    with pytest.raises(ValueError, match="placeholder"):
        turn_credentials(srv)


@pytest.mark.gpu
@pytest.mark.timeout(90)
async def test_turn_users_are_named_after_the_token_so_quotas_bind_per_token(tmp_path):
    """Every session a token opens (the 201's Link headers) and its /api/ice get TURN users
    "<expiry>:<the token's nonce>": coturn counts a REST user by what follows the colon, so
    its user-quota binds one token however many sessions it opens; another token is
    another user."""
    import aiohttp

    from stream.auth import Role

    from .rtc import bearer, small_config, start_server, with_auth

    secret = tmp_path / "turn_secret"
    secret.write_text("0123456789abcdef0123456789abcdef")
    cfg, authority = with_auth(
        small_config(
            **{
                "server.turn_servers": ["turn:127.0.0.1:9?transport=udp"],
                "server.turn_secret_file": str(secret),
            }
        ),
        tmp_path,
    )
    srv = await start_server(cfg)
    first, second = authority.mint(Role.VIEWER, 600), authority.mint(Role.VIEWER, 600)
    users = []
    try:
        async with aiohttp.ClientSession() as http:
            for token in (first, first, second):
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                pc.addTransceiver("video", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                headers = {"Content-Type": "application/sdp", **bearer(token)}
                async with http.post(
                    srv.url + "/whep", data=pc.localDescription.sdp, headers=headers
                ) as r:
                    assert r.status == 201, await r.text()
                    (link,) = r.headers.getall("Link")
                    location = r.headers["Location"]
                await pc.close()
                users.append(link.split('username="', 1)[1].split('"', 1)[0])
                async with http.delete(srv.url + location, headers=bearer(token)) as r:
                    assert r.status == 200
            async with http.get(srv.url + "/api/ice", headers=bearer(first)) as r:
                (turn,) = (await r.json())["iceServers"]
    finally:
        await srv.close()
    names = [u.split(":", 1)[1] for u in users]
    assert names[0] == names[1] == turn["username"].split(":", 1)[1], users
    assert names[2] != names[0] and len(names[0]) == 16

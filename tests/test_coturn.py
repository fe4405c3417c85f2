"""The shipped coturn, run for real: docker/compose.yaml's own entrypoint script and
turnserver.conf start Debian's turnserver (4.6, the image's version) on 127.0.0.1, and a TURN
client (aioice) with credentials minted by stream.webrtc.ice asks it to relay. Peers on
loopback, private ranges, the metadata address and the extra TURN_DENIED_PEER_IPS are refused
(403), a public one is allowed; the per-user quota counts every credential minted for one
token together; a placeholder secret stops the start. Skipped where coturn is not installed
(apt install coturn)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from stream import config as config_mod
from stream.webrtc.ice import turn_credentials

yaml = pytest.importorskip("yaml")
COMPOSE = Path(__file__).resolve().parents[1] / "docker" / "compose.yaml"
TURNSERVER = shutil.which("turnserver")
pytestmark = pytest.mark.skipif(TURNSERVER is None, reason="coturn not installed")
EXTRA_DENIED = "198.51.100.7 198.51.100.9-198.51.100.10"


def _free_udp_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _start(
    tmp_path: Path, secret: str, host: str = "127.0.0.1"
) -> tuple[subprocess.Popen, int, Path]:
    """compose's coturn command with the container's paths moved into tmp_path and the
    listener and relay on 127.0.0.1 (the flags after the script's own)."""
    compose = yaml.safe_load(COMPOSE.read_text())
    (tmp_path / "turnserver.conf").write_text(compose["configs"]["turnserver_conf"]["content"])
    (tmp_path / "turn_secret").write_text(secret + "\n")
    port = _free_udp_port(host)
    script = (
        compose["services"]["coturn"]["command"][0]
        .replace("$$", "$")
        .replace("/run/secrets/turn_secret", str(tmp_path / "turn_secret"))
        .replace("/etc/coturn/turnserver.conf", str(tmp_path / "turnserver.conf"))
        .replace("/tmp/turn-secret.conf", str(tmp_path / "run.conf"))
    )
    script = re.sub(r"\$\{PUBLIC_IP:\?[^}]*\}", "127.0.0.1", script)
    script += (
        f" --listening-ip={host} --listening-port={port} --relay-ip={host}"
        f" --pidfile={tmp_path}/turn.pid --userdb={tmp_path}/turndb --no-tls --no-dtls"
    )
    log = tmp_path / "coturn.log"
    proc = subprocess.Popen(
        ["sh", "-c", script],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TURN_DENIED_PEER_IPS": EXTRA_DENIED},
    )
    return proc, port, log


async def _allocate(
    port: int, user: str, password: str, host: str = "127.0.0.1"
) -> TurnClientUdpProtocol:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            (host, port), username=user, password=password, lifetime=600,
            channel_refresh_time=500,
        ),
        remote_addr=(host, port),
    )  # fmt: skip
    try:
        if ":" in host:  # RFC 6156: an IPv6 relay must be asked for (aioice never does)
            request = stun.Message(
                message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST
            )
            request.attributes["LIFETIME"] = 600
            request.attributes["REQUESTED-TRANSPORT"] = 17 << 24  # UDP
            request.attributes["REQUESTED-ADDRESS-FAMILY"] = 2 << 24  # IPv6
            await proto.request_with_retry(request)
        else:
            await proto.connect()
    except BaseException:
        proto.transport.close()
        raise
    return proto


async def _permission(proto: TurnClientUdpProtocol, ip: str) -> int:
    """0 when the relay to `ip` is allowed, else the TURN error code."""
    request = stun.Message(
        message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
    )
    request.attributes["XOR-PEER-ADDRESS"] = (ip, 9)
    try:
        await proto.request_with_retry(request)
    except stun.TransactionFailed as e:
        return e.response.error_code or 599  # no code: refused all the same
    return 0


async def _close(protos: list[TurnClientUdpProtocol]) -> None:
    for proto in protos:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proto.delete(), 5)


def _server_config(tmp_path: Path, port: int) -> config_mod.ServerConfig:
    return config_mod.load(
        None,
        {
            "server.turn_servers": [f"turn:127.0.0.1:{port}?transport=udp"],
            "server.turn_secret_file": str(tmp_path / "turn_secret"),
        },
    ).server


async def _up(
    port: int, srv: config_mod.ServerConfig, proc: subprocess.Popen, log: Path,
    host: str = "127.0.0.1",
):  # fmt: skip
    """The first allocation, once coturn listens (it starts in about a second)."""
    for _ in range(40):
        assert proc.poll() is None, log.read_text()[-3000:]
        user, password = turn_credentials(srv, user="0123456789abcdef")  # type: ignore[misc]
        try:
            return await asyncio.wait_for(_allocate(port, user, password, host), 3)
        except (TimeoutError, ConnectionError, stun.TransactionTimeout):
            await asyncio.sleep(0.25)
    pytest.fail("coturn never answered: " + log.read_text()[-3000:])


@pytest.mark.timeout(90)
async def test_shipped_coturn_relays_to_public_peers_only_and_quotas_bind_per_token(tmp_path):
    proc, port, log = _start(tmp_path, "0123456789abcdef0123456789abcdef")
    protos: list[TurnClientUdpProtocol] = []
    try:
        srv = _server_config(tmp_path, port)
        first = await _up(port, srv, proc, log)
        protos.append(first)
        assert "Bad configuration" not in log.read_text(), log.read_text()[-3000:]
        for peer in ("127.0.0.1", "127.1.2.3", "10.0.0.1", "192.168.1.1", "172.17.0.1",
                     "169.254.169.254", "100.64.0.1", "0.0.0.0", "198.51.100.7",
                     "198.51.100.10"):  # fmt: skip
            assert await _permission(first, peer) == 403, peer
        assert await _permission(first, "203.0.113.10") == 0  # a public peer: allowed
        # user-quota=4 per token: credentials minted for the same token at other times (a
        # new /api/ice, another session's Link header) name the same user after the colon
        for n in range(3):
            user, password = turn_credentials(  # type: ignore[misc]
                srv, now=time.time() + n, user="0123456789abcdef", ttl_s=600 * (1 + n)
            )
            protos.append(await _allocate(port, user, password))
        user, password = turn_credentials(srv, user="0123456789abcdef")  # type: ignore[misc]
        with pytest.raises(stun.TransactionFailed) as e:
            await _allocate(port, user, password)
        assert e.value.response.error_code == 486  # Allocation Quota Reached
        user, password = turn_credentials(srv, user="fedcba9876543210")  # type: ignore[misc]
        protos.append(await _allocate(port, user, password))  # another token: its own quota
    finally:
        await _close(protos)
        proc.terminate()
        proc.wait(10)


def _has_ipv6_loopback() -> bool:
    try:
        _free_udp_port("::1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.timeout(60)
async def test_shipped_coturn_denies_ipv6_peers_that_reach_private_or_ipv4_space(
    tmp_path, monkeypatch
):
    """An IPv6 relay (coturn on ::1): loopback, ULA, link-local and the IPv6 forms that
    carry an IPv4 address (mapped, NAT64, 6to4, Teredo) are refused; global IPv6 is not."""
    entry = (0x0017, "REQUESTED-ADDRESS-FAMILY", stun.pack_unsigned, stun.unpack_unsigned)
    monkeypatch.setitem(stun.ATTRIBUTES_BY_NAME, entry[1], entry)
    monkeypatch.setitem(stun.ATTRIBUTES_BY_TYPE, entry[0], entry)
    proc, port, log = _start(tmp_path, "0123456789abcdef0123456789abcdef", host="::1")
    protos: list[TurnClientUdpProtocol] = []
    try:
        first = await _up(port, _server_config(tmp_path, port), proc, log, host="::1")
        protos.append(first)
        for peer in ("::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
                     "64:ff9b::a00:1", "2002:7f00:1::1", "2001:0:4136:e378::1",
                     "2001:db8::1", "ff02::1"):  # fmt: skip
            assert await _permission(first, peer) == 403, peer
        assert await _permission(first, "2a00:1450:4001::1") == 0  # global: allowed
    finally:
        await _close(protos)
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("secret", ["change-me", "", "changeme"])
def test_shipped_coturn_refuses_a_placeholder_secret(tmp_path, secret):
    proc, _, log = _start(tmp_path, secret)
    try:
        assert proc.wait(20) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "TURN_SECRET is empty or a placeholder" in log.read_text()
    assert not (tmp_path / "run.conf").exists()

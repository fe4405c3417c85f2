"""ICE settings of the service: STUN/TURN servers, a fixed UDP port range, a public address.

- `ice_servers(cfg)` gives the server's own RTCPeerConnections their STUN/TURN servers and
  `browser_ice(cfg)` the same list for viewers (GET /api/ice), in the browser's
  RTCConfiguration shape. TURN credentials are either static (`turn_username` plus
  `turn_credential` or `turn_credential_file`) or minted per request from coturn's
  `static-auth-secret` (`turn_secret_file`; the TURN REST API scheme: username
  "<expiry>:<user>", credential base64(HMAC-SHA1(secret, username))), so the page never
  sees a long-lived password. The user is the token's nonce (16 hex digits; a session's id
  on an open server): coturn counts a REST user by what follows the colon, so its
  user-quota binds per token however often credentials are minted. A secret file holding
  a known placeholder (change-me) is refused (stream/secretfiles.py).
- `configure_network(port_min, port_max, public_address)`: aioice 0.13 (what aiortc 1.16
  uses) binds host candidates on port 0 and has no option for a port range or a 1:1 NAT
  address (aiortc/aioice#47, PR #112 still open). We install two small shims in aioice.ice
  only: its host-candidate bind tries the ports of the range in turn, and every IPv4 host
  candidate is also announced as a server-reflexive candidate at `public_address` with the
  same port (what a container published with `-p PMIN-PMAX:PMIN-PMAX/udp` needs). TURN
  and STUN client sockets are not affected.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aioice.ice
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import RTCIceServer

from ..secretfiles import read_secret
from . import patches

if TYPE_CHECKING:
    from ..config import ServerConfig

log = logging.getLogger(__name__)

TURN_REST_USER = "framesmith"

_ports: range | None = None
_cursor = itertools.count()
_public: str = ""


# -- servers -------------------------------------------------------------------------------------


def _read_secret(path: str, key: str) -> str:
    return read_secret(path, f"server.{key}")  # a placeholder (change-me) is refused


def turn_credentials(
    cfg: ServerConfig, now: float | None = None, user: str = TURN_REST_USER, ttl_s: float = 0
) -> tuple[str, str] | None:
    """(username, credential) for the TURN servers, or None when none are configured.

    Minted credentials (turn_secret_file) name `user` (one per session or token, so coturn's
    per-user quota and logs tell sessions apart) and expire after `ttl_s` (at most
    server.turn_ttl_s; 0: that)."""
    if not cfg.turn_servers:
        return None
    if cfg.turn_secret_file:
        secret = _read_secret(cfg.turn_secret_file, "turn_secret_file")
        ttl = min(ttl_s, cfg.turn_ttl_s) if ttl_s > 0 else cfg.turn_ttl_s
        expiry = int((time.time() if now is None else now) + ttl)
        user = f"{expiry}:{user}"
        mac = hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()
        return user, base64.b64encode(mac).decode()
    credential = cfg.turn_credential
    if cfg.turn_credential_file:
        credential = _read_secret(cfg.turn_credential_file, "turn_credential_file")
    return cfg.turn_username, credential


def browser_ice(cfg: ServerConfig, user: str = TURN_REST_USER, ttl_s: float = 0) -> dict[str, Any]:
    """The viewer's RTCConfiguration: {"iceServers": [...]} (JSON for GET /api/ice)."""
    servers: list[dict[str, Any]] = []
    if cfg.stun_servers:
        servers.append({"urls": list(cfg.stun_servers)})
    creds = turn_credentials(cfg, user=user, ttl_s=ttl_s)
    if creds is not None:
        servers.append(
            {"urls": list(cfg.turn_servers), "username": creds[0], "credential": creds[1]}
        )
    return {"iceServers": servers}


def link_headers(cfg: ServerConfig, user: str, ttl_s: float) -> list[str]:
    """RFC 9725 section 4.6: the ICE servers as `Link: <url>; rel="ice-server"` header values
    of a 201, TURN ones with this session's credentials."""
    links = []
    for server in browser_ice(cfg, user, ttl_s)["iceServers"]:
        creds = ""
        if "username" in server:
            creds = (
                f'; username="{_quoted(server["username"])}"; '
                f'credential="{_quoted(server["credential"])}"; credential-type="password"'
            )
        links += [f'<{url}>; rel="ice-server"{creds}' for url in server["urls"]]
    return links


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def ice_servers(cfg: ServerConfig) -> list[RTCIceServer]:
    """The same servers for aiortc (which uses the first STUN and first TURN URL only)."""
    return [RTCIceServer(**s) for s in browser_ice(cfg)["iceServers"]]


# -- port range and public address ---------------------------------------------------------------


class _LoopProxy:
    """The running loop, except that binds on port 0 try the configured range."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def create_datagram_endpoint(
        self,
        factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        ports = _ports
        if ports is None or local_addr is None or local_addr[1] != 0 or kwargs.get("remote_addr"):
            return await self._loop.create_datagram_endpoint(
                factory, local_addr=local_addr, **kwargs
            )
        start = next(_cursor)
        last: OSError | None = None
        for k in range(len(ports)):
            port = ports[(start + k) % len(ports)]
            try:
                return await self._loop.create_datagram_endpoint(
                    factory, local_addr=(local_addr[0], port), **kwargs
                )
            except OSError as e:
                last = e
        log.warning(
            "no free UDP port in %d-%d on %s (server.ice_port_min/max); raise the "
            "range or lower server.max_viewers",
            ports[0],
            ports[-1],
            local_addr[0],
        )
        raise last or OSError("empty port range")


class _AsyncioProxy:
    """`asyncio` as aioice.ice sees it: get_running_loop() hands out the _LoopProxy."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    def get_running_loop() -> _LoopProxy:
        return _LoopProxy(asyncio.get_running_loop())


_original_candidates = aioice.ice.Connection.get_component_candidates


async def _component_candidates(
    self: aioice.ice.Connection,
    component: int,
    addresses: list[str],
    timeout: int = 5,
) -> list[Candidate]:
    candidates = await _original_candidates(self, component, addresses, timeout)
    if _public:
        have = {(c.host, c.port) for c in candidates}
        for c in list(candidates):
            if (
                c.type == "host"
                and ipaddress.ip_address(c.host).version == 4
                and (_public, c.port) not in have
            ):
                candidates.append(
                    Candidate(
                        foundation=candidate_foundation("srflx", "udp", c.host),
                        component=component,
                        transport="udp",
                        priority=candidate_priority(component, "srflx"),
                        host=_public,
                        port=c.port,
                        type="srflx",
                        related_address=c.host,
                        related_port=c.port,
                    )
                )
                have.add((_public, c.port))
    return candidates


def configure_network(port_min: int = 0, port_max: int = 0, public_address: str = "") -> None:
    """Apply the port range (0, 0: ephemeral ports) and the announced public IPv4 address."""
    global _ports, _public
    _ports = range(port_min, port_max + 1) if port_min and port_max else None
    _public = public_address
    for p in patches.PORT_RANGE:
        p.resolve()
    if _ports is not None or _public:
        aioice.ice.asyncio = _AsyncioProxy()  # type: ignore[assignment]
        aioice.ice.Connection.get_component_candidates = _component_candidates  # type: ignore[method-assign]
        log.info(
            "ICE: UDP ports %s, public address %s",
            f"{port_min}-{port_max}" if _ports else "ephemeral",
            _public or "none",
        )
    else:
        aioice.ice.asyncio = asyncio
        aioice.ice.Connection.get_component_candidates = _original_candidates  # type: ignore[method-assign]

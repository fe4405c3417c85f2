"""The HTTP guard: every request passes it before a handler sees it.

In order (outermost first):
- `harden`: security headers on every answer (CSP with frame-ancestors, nosniff,
  Referrer-Policy, no caching of API answers; HSTS over TLS) and a JSON 4xx with a short reason
  for whatever a handler or aiohttp refuses; the metric label is the matched route, never the
  raw path (a scan of random paths cannot grow the label set).
- `trusted_host`: the Host header must name this server (HostNames: IP literals, localhost,
  public_url's host, server.allowed_hosts), else 421. DNS rebinding gives an attacker's page
  a name that resolves to 127.0.0.1: its requests carry that name as Host and its own
  origin, so without this check they looked same-origin.
- `cross_origin`: CORS is same-origin by default. Another origin may call only when listed
  in server.cors_origins; a preflight from any other origin gets 403, and so does any request
  that carries a foreign Origin, except a GET/HEAD of a public route (the page, its files,
  /healthz). That covers "simple" POSTs that need no preflight and WebSocket upgrades, which
  CORS never checks: a page the operator visits cannot drive or read a server on 127.0.0.1.
  Origin is judged against the trusted host names, never against the Host header alone.
- `authorize`: the route's Right (every route has one: `Route` in http.py), the caller's
  Grant from its bearer token (stream/auth.py; the open Grant on an open server), 401 with
  `WWW-Authenticate: Bearer` for a missing, malformed, forged, expired or revoked token, 403
  for a token whose role lacks the right; POST/PATCH/DELETE are rate limited per token (or
  per address without one), and so, in buckets of their own, are GETs above public and
  WebSocket upgrades: 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from .auth import OPEN, AuthError, Grant, Right, TokenAuthority, bearer
from .limits import KeyedBuckets
from .webrtc import SignallingError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GRANT: web.RequestKey[Grant] = web.RequestKey("grant", Grant)
LIMITED = ("POST", "PATCH", "DELETE")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}


def split_host(authority: str) -> tuple[str, int | None]:
    """(lower-case host name without brackets, port or None) of a Host header or an origin's
    netloc; ValueError for one that is not a host[:port]."""
    parts = urlsplit(f"//{authority}")
    if not parts.hostname or parts.username is not None or parts.path:
        raise ValueError(f"not a host: {authority[:64]!r}")
    return parts.hostname.lower(), parts.port


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    return is_ip(host) and ipaddress.ip_address(host).is_loopback


@dataclass(frozen=True)
class HostNames:
    """The names this server answers to. An IP literal cannot be rebound (a page's origin
    is then that address itself), nor can localhost (browsers resolve it to loopback
    themselves); a DNS name must be public_url's, server.host's or listed: an exact name, a
    leading-dot domain for its subdomains, or "*" for any (a proxy in front checks Host)."""

    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, names: Iterable[str]) -> HostNames:
        return cls(frozenset(n.lower().rstrip(".") for n in names if n))

    def allows(self, host: str) -> bool:
        host = host.rstrip(".")
        if is_ip(host) or is_loopback(host) or host in self.names or "*" in self.names:
            return True
        return any(n.startswith(".") and host.endswith(n) for n in self.names)


@dataclass
class Guard:
    """What the middlewares need: the rights of every route, the token authority (None: an
    open server), the host names and origins allowed, the limits."""

    rights: dict[tuple[str, str], Right]  # (method, route's canonical path) -> right
    authority: TokenAuthority | None
    origins: frozenset[str]
    limiter: KeyedBuckets
    tls: bool = False
    public_origin: str = ""  # scheme://host of server.public_url, when set
    hosts: HostNames = field(default_factory=HostNames)
    get_limiter: KeyedBuckets = field(default_factory=lambda: KeyedBuckets(20, 60))

    def right_of(self, request: web.Request) -> Right | None:
        route = request.match_info.route
        resource = route.resource
        if resource is None:  # no route matched: aiohttp answers 404/405 itself
            return Right.PUBLIC
        method = "GET" if request.method == "HEAD" else request.method
        right = self.rights.get((method, resource.canonical))
        if right is None and request.method == "OPTIONS":
            return Right.PUBLIC
        return right

    def grant(self, request: web.Request) -> Grant:
        if self.authority is None:
            return OPEN
        token = bearer(request.headers.get("Authorization"))
        if token is None:
            raise AuthError("a bearer token is needed (Authorization: Bearer <token>)")
        return self.authority.verify(token)

    def same_origin(self, request: web.Request, origin: str) -> bool:
        """An origin is this server's when it is public_url's, or names a trusted host and
        the very host and port the request was sent to (two loopback names of one port are
        one server)."""
        if origin in self.origins or (self.public_origin and origin == self.public_origin):
            return True
        scheme, _, netloc = origin.partition("://")
        host_header = request.headers.get("Host")
        if scheme not in ("http", "https") or host_header is None:
            return False
        try:
            o_host, o_port = split_host(netloc)
            h_host, h_port = split_host(host_header)
        except ValueError:
            return False
        if not self.hosts.allows(o_host):
            return False
        default = 443 if scheme == "https" else 80
        same_port = (o_port or default) == (h_port or default)
        return same_port and (o_host == h_host or (is_loopback(o_host) and is_loopback(h_host)))


GUARD: web.AppKey[Guard] = web.AppKey("guard", Guard)
MetricsHook = Callable[[str, int], None]  # (route, status) of each 4xx answer
METRICS_HOOK: web.AppKey[MetricsHook] = web.AppKey("metrics_hook")


def route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def error(request: web.Request, status: int, reason: str, **headers: str) -> web.Response:
    # the path is the client's (percent-decoded: %0a is a newline) and a reason may quote
    # its input: both repr'd, so no client can forge a log line or send terminal escapes
    log.info("%s %r -> %d %r", request.method, request.path, status, reason)
    return web.json_response({"error": reason}, status=status, headers=headers)


def unauthorized(request: web.Request, reason: str) -> web.Response:
    code = "invalid_request" if "needed" in reason else "invalid_token"
    challenge = f'Bearer realm="framesmith", error="{code}"'
    return error(request, 401, reason, **{"WWW-Authenticate": challenge})


async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The handler's response, with a refusal (SignallingError, aiohttp's 4xx) as a JSON 4xx."""
    try:
        return await handler(request)
    except SignallingError as e:
        return error(request, e.status, e.reason)
    except web.HTTPException as e:
        if e.status >= 500 or e.status < 400:
            raise
        return error(request, e.status, e.reason)


@web.middleware
async def harden(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app[GUARD]
    resp = await answer(request, handler)
    for key, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(key, value)
    if guard.tls:
        resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.path.startswith(("/api/", "/whep", "/whip", "/metrics", "/healthz")):
        resp.headers.setdefault("Cache-Control", "no-store")
    if 400 <= resp.status < 500:
        request.app[METRICS_HOOK](route_label(request), resp.status)
    return resp


@web.middleware
async def trusted_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    host = request.headers.get("Host")
    if host is not None:  # HTTP/1.0 without one is no browser, so no rebinding
        try:
            name, _ = split_host(host)
            ok = request.app[GUARD].hosts.allows(name)
        except ValueError:
            ok = False
        if not ok:
            return error(
                request,
                421,
                f"this server does not answer to the host {host[:64]!r} "
                "(server.allowed_hosts, server.public_url)",
            )
    return await handler(request)


@web.middleware
async def cross_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app[GUARD]
    origin = request.headers.get("Origin")
    foreign = origin is not None and not guard.same_origin(request, origin)
    allowed = origin is not None and origin in guard.origins
    public_read = request.method in ("GET", "HEAD") and guard.right_of(request) is Right.PUBLIC
    if request.method == "OPTIONS":
        if foreign and not allowed:
            return error(request, 403, f"origin {origin!r} may not call this server")
        resp: web.StreamResponse = web.Response(status=204)
    elif foreign and not allowed and not public_read:
        return error(request, 403, f"origin {origin!r} may not call this server")
    else:
        resp = await answer(request, handler)
    if allowed and origin is not None:
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Vary"] = "Origin"
        resp.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, PATCH, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization, If-Match"
        resp.headers["Access-Control-Expose-Headers"] = "Location, Link, ETag"
    return resp


@web.middleware
async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app[GUARD]
    right = guard.right_of(request)
    if right is None:  # a route registered without a right: refuse rather than guess
        log.error("route %s %s has no right", request.method, route_label(request))
        return error(request, 403, "this route has no role that may use it")
    if right is Right.PUBLIC:
        return await answer(request, handler)
    # writes and reads above public in buckets of their own: a page polling /api/stats
    # cannot spend a token's POSTs, nor a flood of GETs or upgrades go unbounded
    limiter = guard.limiter if request.method in LIMITED else guard.get_limiter
    try:
        grant = guard.grant(request)
    except AuthError as e:
        if (wait := limiter.check(f"addr:{request.remote}")) is not None:
            return error(request, 429, "too many requests", **{"Retry-After": _seconds(wait)})
        return unauthorized(request, str(e))
    if (wait := limiter.check(f"token:{grant.nonce}:{request.remote}")) is not None:
        return error(request, 429, "too many requests", **{"Retry-After": _seconds(wait)})
    if not grant.may(right):
        return error(request, 403, f"the {grant.role} role may not {right} here")
    request[GRANT] = grant
    return await answer(request, handler)


def _seconds(wait: float) -> str:
    return str(max(1, int(wait + 0.999)))


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body, or a SignallingError: 413 over `limit` (declared or, for a chunked
    body, counted as it arrives), 408 when it does not arrive within `timeout` (a client
    that sends headers and then nothing cannot hold a handler)."""
    if request.content_length is not None and request.content_length > limit:
        raise SignallingError(
            413, f"body of {request.content_length} bytes is over the {limit} byte limit"
        )
    chunks: list[bytes] = []
    size = 0

    async def pump() -> None:
        nonlocal size
        while chunk := await request.content.read(65536):
            size += len(chunk)
            if size > limit:
                raise SignallingError(413, f"body is over the {limit} byte limit")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(pump(), timeout)
    except TimeoutError:
        raise SignallingError(408, f"the body did not arrive within {timeout:g} s") from None
    return b"".join(chunks)

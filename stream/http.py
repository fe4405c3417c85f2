"""The service's HTTP side (aiohttp): WHEP/WHIP signalling, health, metrics, the viewer page.

Every route is declared once in ROUTES with the Right that may use it (stream/auth.py); the
guard (stream/guard.py) checks it before the handler runs, and `make_app` refuses a route
without one. Handlers reach the service through `request.app[SERVICE]`; a refusal is a
SignallingError (4xx + a short reason a client can act on, never exception text).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from .auth import OPEN, Right, Role, TokenAuthority
from .config import RoomConfig, validate_as
from .guard import (
    GRANT,
    GUARD,
    METRICS_HOOK,
    Guard,
    HostNames,
    cross_origin,
    error,
    harden,
    read_body,
    trusted_host,
)
from .guard import authorize as authorize_middleware
from .limits import KeyedBuckets
from .metrics import CONTENT_TYPE
from .placement import page_file
from .room import Room
from .service import DEFAULT_ROOM, Service
from .webrtc import SessionKind, SignallingError, browser_ice
from .webrtc.ice import link_headers
from .webrtc.trickle import MIME as TRICKLE

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
SDP = "application/sdp"
SERVICE: web.AppKey[Service] = web.AppKey("service", Service)
STATIC_DIR: web.AppKey[Path] = web.AppKey("static", Path)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _room(request: web.Request) -> Room:
    """The room a request is for: /rooms/NAME/..., else the default room."""
    name = request.match_info.get("room")
    svc = request.app[SERVICE]
    return svc.room if name is None else svc.room_named(name)


def _prefix(request: web.Request) -> str:
    name = request.match_info.get("room")
    return "" if name is None else f"/rooms/{name}"


def _grant_ttl(request: web.Request) -> float:
    """How long the credentials handed to this caller may live: its token's lifetime."""
    grant = request[GRANT]
    return 0 if grant is OPEN else max(60.0, grant.expires - time.time())


async def _read_sdp(request: web.Request) -> str:
    cfg = request.app[SERVICE].config.server
    if request.content_type != SDP:
        raise SignallingError(415, f"Content-Type must be {SDP}, not {request.content_type!r}")
    body = await read_body(request, cfg.max_body_bytes, cfg.body_timeout_s)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignallingError(400, "SDP body is not UTF-8") from None


def _sdp_answer(request: web.Request, kind: SessionKind, session_id: str, sdp: str) -> web.Response:
    cfg = request.app[SERVICE].config.server
    # behind a load balancer, public_url names this very pod (docker/k8s/README.md)
    base = os.path.expandvars(cfg.public_url).rstrip("/")
    resp = web.Response(
        status=201,
        text=sdp,
        content_type=SDP,
        headers={
            "Location": f"{base}{_prefix(request)}/{kind}/{session_id}",
            "ETag": _room(request).sessions.by_id[session_id].etag,
        },
    )
    # RFC 9725 4.6: the ICE servers, TURN with credentials named after the token (as
    # /api/ice's), so coturn's per-user quota counts the token's sessions together
    grant = request[GRANT]
    user = session_id[:16] if grant is OPEN else grant.nonce[:16]
    try:
        for link in link_headers(cfg, user, _grant_ttl(request)):
            resp.headers.add("Link", link)
    except ValueError as e:  # an unreadable TURN secret file
        log.error("%s", e)
    return resp


def _patch(kind: SessionKind) -> Handler:
    """Trickle ICE (RFC 9725 4.3.1) by the session's own token (or admin): 204 when applied,
    428 without If-Match, 412 for a stale one, 422 for an ICE restart (not supported)."""

    async def handler(request: web.Request) -> web.Response:
        svc = _room(request)
        cfg = request.app[SERVICE].config.server
        sid = request.match_info["id"]
        session = svc.sessions.by_id.get(sid)
        if session is not None and not request[GRANT].owns(session.owner):
            raise SignallingError(403, "only the token that made a session (or admin) changes it")
        if request.content_type != TRICKLE:
            raise SignallingError(415, f"Content-Type must be {TRICKLE}")
        body = await read_body(request, cfg.max_body_bytes, cfg.body_timeout_s)
        await svc.sessions.trickle(
            sid, kind, request.headers.get("If-Match"), body.decode("utf-8", errors="replace")
        )
        return web.Response(status=204)

    return handler


async def whep_post(request: web.Request) -> web.Response:
    svc = _room(request)
    offer = await _read_sdp(request)
    codec = request.query.get("codec")
    if codec is not None and codec not in ("vp8", "h264"):
        raise SignallingError(400, f"codec must be vp8 or h264, not {codec[:16]!r}")
    session, answer = await svc.sessions.whep(offer, codec, request[GRANT])
    return _sdp_answer(request, SessionKind.WHEP, session.id, answer)


async def whip_post(request: web.Request) -> web.Response:
    svc = _room(request)
    offer = await _read_sdp(request)
    session, answer = await svc.sessions.whip(offer, request[GRANT])
    return _sdp_answer(request, SessionKind.WHIP, session.id, answer)


def _delete(kind: SessionKind) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        svc = _room(request)
        sid = request.match_info["id"]
        session = svc.sessions.by_id.get(sid)
        if session is None or session.kind is not kind:
            raise SignallingError(404, f"no {kind.upper()} session {sid[:40]!r}")
        if not request[GRANT].owns(session.owner):
            raise SignallingError(403, "only the token that made a session (or admin) ends it")
        await svc.sessions.close(sid)
        return web.Response(status=200)

    return handler


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE].health())


async def room_healthz(request: web.Request) -> web.Response:
    return web.json_response(_room(request).health())


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICE].metrics.text()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def room_metrics(request: web.Request) -> web.Response:
    body = _room(request).metrics.text()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


# -- the rooms' admin API (issue 31) ------------------------------------------------------------


async def api_rooms(request: web.Request) -> web.Response:
    return web.json_response({"rooms": request.app[SERVICE].list_rooms()})


async def api_rooms_post(request: web.Request) -> web.Response:
    """Create a room: a JSON [[rooms]] table ({"name", "source", and optionally width,
    height, fps, mode, audio, max_viewers}); models are the ones the process loaded."""
    svc = request.app[SERVICE]
    if request.content_type != "application/json":
        raise SignallingError(415, "Content-Type must be application/json")
    body = await read_body(request, 4096, svc.config.server.body_timeout_s)
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or "model" in data:
            raise ValueError("a room's model is loaded at start ([[rooms]] model)")
        spec = validate_as(RoomConfig, data, "POST /api/rooms")
    except (ValueError, RecursionError) as e:  # ConfigError is a ValueError
        raise SignallingError(400, str(e)[:300]) from None
    room = await svc.add_room(spec)
    return web.json_response(
        room.summary(), status=201, headers={"Location": f"/rooms/{spec.name}/"}
    )


async def api_rooms_delete(request: web.Request) -> web.Response:
    await request.app[SERVICE].remove_room(request.match_info["name"])
    return web.Response(status=204)


async def _redirect_to_room(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect(f"/rooms/{request.match_info['room']}/")


async def api_ice(request: web.Request) -> web.Response:
    """The page's RTCConfiguration: STUN/TURN servers, TURN credentials minted for this token
    (its nonce names the TURN user) and living no longer than it."""
    grant = request[GRANT]
    try:
        body = browser_ice(
            request.app[SERVICE].config.server, grant.nonce[:16], _grant_ttl(request)
        )
    except ValueError as e:  # an unreadable secret file
        log.error("%s", e)
        raise SignallingError(503, "TURN credentials unavailable") from None
    return web.json_response(body)


async def api_stats(request: web.Request) -> web.Response:
    return web.json_response(_room(request).stats())


async def api_mode(request: web.Request) -> web.Response:
    svc = _room(request)
    if request.content_type != "application/json":
        raise SignallingError(415, "Content-Type must be application/json")
    body = await read_body(request, 4096, request.app[SERVICE].config.server.body_timeout_s)
    try:
        data = json.loads(body)
        mode = str(data["mode"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise SignallingError(400, 'body must be {"mode": "..."}') from None
    svc.set_mode(mode)
    return web.json_response(svc.describe())


async def model_file(request: web.Request) -> web.Response:
    """The model's browser bundle, for a viewer-placed page (stream/placement.py)."""
    return await _room(request).placement.respond(request)


async def api_input(request: web.Request) -> web.StreamResponse:
    """GET /api/input (WebSocket): the players' input events, for the agent of a remote game
    host (stream/input/remote.py, `python -m stream agent`). The publisher role (checked by
    the guard before the upgrade: the agent sends its token as a Bearer header)."""
    ws = web.WebSocketResponse()
    if not ws.can_prepare(request).ok:
        raise SignallingError(426, "GET /api/input is a WebSocket (Upgrade: websocket)")
    grant = request[GRANT]
    return await _room(request).agents.serve(request, grant.nonce, grant.expires)


def _page(name: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        _room(request)  # 404 for a room that is not here
        return web.FileResponse(
            request.app[STATIC_DIR] / name, headers={"Cache-Control": "no-cache"}
        )

    return handler


class Scope(StrEnum):
    """Which tokens reach a route beyond its right: those for its room (a token minted with
    --room reaches only its rooms), those for every room (the process: the admin API,
    /metrics), or any (/api/ice; public routes have no token)."""

    ROOM = "room"
    PROCESS = "process"
    ANY = "any"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    right: Right  # who may use it (stream/auth.py RIGHTS)
    scope: Scope = Scope.ROOM


# a room's routes: at the root for the default room, and under /rooms/{room} for each room
ROOM_ROUTES = [
    Route("GET", "/", _page("index.html"), Right.PUBLIC),
    Route("GET", "/publish", _page("publish.html"), Right.PUBLIC),
    Route("POST", "/whep", whep_post, Right.WATCH),
    Route("DELETE", "/whep/{id}", _delete(SessionKind.WHEP), Right.SESSION),
    Route("PATCH", "/whep/{id}", _patch(SessionKind.WHEP), Right.SESSION),
    Route("POST", "/whip", whip_post, Right.PUBLISH),
    Route("DELETE", "/whip/{id}", _delete(SessionKind.WHIP), Right.SESSION),
    Route("PATCH", "/whip/{id}", _patch(SessionKind.WHIP), Right.SESSION),
    Route("GET", "/api/input", api_input, Right.PUBLISH),
    Route("GET", "/api/stats", api_stats, Right.ADMIN),
    Route("POST", "/api/mode", api_mode, Right.ADMIN),
    Route("GET", "/model/{file}", page_file, Right.PUBLIC),  # runtime.js, present.wgsl
    Route("GET", "/model/{size}/{file}", model_file, Right.WATCH),  # the model's bundle
    Route("GET", "/model/{size}/kernels/{kernel}", model_file, Right.WATCH),
]
ROOM = "/rooms/{room}"
ROUTES = [
    *ROOM_ROUTES,
    *(Route(r.method, ROOM + r.path, r.handler, r.right) for r in ROOM_ROUTES),
    Route("GET", ROOM, _redirect_to_room, Right.PUBLIC),
    Route("GET", ROOM + "/healthz", room_healthz, Right.PUBLIC),
    Route("GET", ROOM + "/metrics", room_metrics, Right.ADMIN),
    Route("GET", "/healthz", healthz, Right.PUBLIC, Scope.ANY),
    Route("GET", "/api/ice", api_ice, Right.SESSION, Scope.ANY),
    Route("GET", "/metrics", metrics, Right.ADMIN, Scope.PROCESS),
    Route("GET", "/api/rooms", api_rooms, Right.ADMIN, Scope.PROCESS),
    Route("POST", "/api/rooms", api_rooms_post, Right.ADMIN, Scope.PROCESS),
    Route("DELETE", "/api/rooms/{name}", api_rooms_delete, Right.ADMIN, Scope.PROCESS),
]
STATIC_PREFIX = "/static"
SCOPES: web.AppKey[dict[tuple[str, str], Scope]] = web.AppKey("scopes", dict)


@web.middleware
async def room_scope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A token for some rooms (auth.Grant.rooms) gets 403 in any other room and on the
    process's routes; checked after the guard's token and role checks."""
    grant = request.get(GRANT)  # set on every route above public
    if grant is not None and grant.rooms is not None:
        route = request.match_info.route
        resource = route.resource
        canonical = resource.canonical if resource is not None else ""
        method = "GET" if request.method == "HEAD" else request.method
        scope = request.app[SCOPES].get((method, canonical), Scope.ROOM)
        room = request.match_info.get("room", DEFAULT_ROOM)
        if scope is Scope.PROCESS:
            return error(request, 403, "a token for some rooms may not use this route")
        if scope is Scope.ROOM and not grant.reaches(room):
            return error(request, 403, f"this token is not for room {room[:64]!r}")
    return await handler(request)


def authority_of(service: Service) -> TokenAuthority | None:
    """The token authority of a config with [auth]; None for an open server."""
    auth = service.config.auth
    if not auth.enabled:
        return None
    return TokenAuthority.from_file(auth.secret_file, auth.max_token_ttl_s, auth.revoked_file)


TOKEN_CHECK_S = 1.0  # how often sessions and WebSockets are checked for ended tokens


async def end_sessions_of_ended_tokens(service: Service, authority: TokenAuthority) -> None:
    """A session or an input WebSocket lives no longer than the token that opened it: at
    its expiry, or within TOKEN_CHECK_S of its nonce landing in [auth] revoked_file."""
    while True:
        await asyncio.sleep(TOKEN_CHECK_S)
        try:
            authority.revoked.reload()
            revoked, now = authority.revoked.nonces, time.time()
            for room in list(service.rooms.values()):
                for sid in room.sessions.ended_by_token(revoked, now):
                    await room.sessions.close(sid, reason="its token expired or was revoked")
                await room.agents.end_tokens(revoked, now)
        except Exception:  # one bad round (logged) must not end the watch for good
            log.exception("ending the sessions of expired or revoked tokens failed")


def make_app(service: Service, *, tls: bool = False) -> web.Application:
    cfg = service.config.server
    rights = {(r.method, r.path): r.right for r in ROUTES}
    scopes = {(r.method, r.path): r.scope for r in ROUTES}
    rights[("GET", STATIC_PREFIX)] = Right.PUBLIC
    public = urlsplit(os.path.expandvars(cfg.public_url))
    guard = Guard(
        rights=rights,
        authority=authority_of(service),
        origins=frozenset(cfg.cors_origins),
        limiter=KeyedBuckets(cfg.rate_limit_per_s, cfg.rate_limit_burst),
        tls=tls or cfg.public_url.startswith("https://"),
        public_origin=f"{public.scheme}://{public.netloc}" if public.netloc else "",
        hosts=HostNames.of([*cfg.allowed_hosts, public.hostname or "", cfg.host]),
        get_limiter=KeyedBuckets(cfg.get_rate_limit_per_s, cfg.get_rate_limit_burst),
    )
    app = web.Application(
        client_max_size=cfg.max_body_bytes,
        middlewares=[harden, trusted_host, cross_origin, authorize_middleware, room_scope],
    )
    app[SERVICE] = service
    app[SCOPES] = scopes
    app[GUARD] = guard
    app[METRICS_HOOK] = lambda route, status: service.metrics.bad_requests.labels(
        route, str(status)
    ).inc()
    app[STATIC_DIR] = Path(cfg.static_dir) if cfg.static_dir else STATIC
    for r in ROUTES:
        app.router.add_route(r.method, r.path, r.handler)
    app.router.add_static(STATIC_PREFIX + "/", app[STATIC_DIR], show_index=False)
    for resource in app.router.resources():
        for route in resource:
            method = route.method if route.method != "HEAD" else "GET"
            if (method, resource.canonical) not in rights:
                raise RuntimeError(f"route {method} {resource.canonical} has no right")
    if guard.authority is None:
        log.warning("no [auth]: this server is open, every caller may do everything")
    else:
        log.info("auth: bearer tokens required (roles %s)", ", ".join(r.value for r in Role))

    watcher: list[asyncio.Task[None]] = []

    async def on_startup(app: web.Application) -> None:
        await service.start()
        if guard.authority is not None:
            watcher.append(
                asyncio.create_task(end_sessions_of_ended_tokens(service, guard.authority))
            )

    async def on_shutdown(app: web.Application) -> None:
        for task in watcher:
            task.cancel()
        await service.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app

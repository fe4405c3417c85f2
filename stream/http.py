"""The service's HTTP side (aiohttp): WHEP/WHIP signalling, health, metrics, the viewer page.

Every handler reaches the service through `request.app[SERVICE]`; malformed or hostile
requests get a 4xx with a short reason (`SignallingError`), and the server keeps serving.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from .metrics import CONTENT_TYPE
from .service import Service
from .webrtc import SessionKind, SignallingError, browser_ice

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
SDP = "application/sdp"
SERVICE: web.AppKey[Service] = web.AppKey("service")
STATIC_DIR: web.AppKey[Path] = web.AppKey("static")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(request: web.Request, status: int, reason: str) -> web.Response:
    svc: Service = request.app[SERVICE]
    svc.metrics.bad_requests.labels(request.path.split("/")[1] or "/", str(status)).inc()
    log.info("%s %s -> %d %s", request.method, request.path, status, reason)
    return web.json_response({"error": reason}, status=status)


async def _read_sdp(request: web.Request) -> str:
    svc: Service = request.app[SERVICE]
    limit = svc.config.server.max_body_bytes
    if request.content_type != SDP:
        raise SignallingError(415, f"Content-Type must be {SDP}, not {request.content_type!r}")
    if request.content_length is not None and request.content_length > limit:
        raise SignallingError(
            413,
            f"body of {request.content_length} bytes is over the "
            f"{limit} byte limit (server.max_body_bytes)",
        )
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise SignallingError(413, f"body is over the {limit} byte limit (server.max_body_bytes)")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignallingError(400, "SDP body is not UTF-8") from None


def _sdp_answer(request: web.Request, prefix: str, session_id: str, sdp: str) -> web.Response:
    # behind a load balancer, public_url names this very pod (docker/k8s/README.md)
    base = os.path.expandvars(request.app[SERVICE].config.server.public_url).rstrip("/")
    return web.Response(
        status=201,
        text=sdp,
        content_type=SDP,
        headers={"Location": f"{base}/{prefix}/{session_id}"},
    )


async def whep_post(request: web.Request) -> web.Response:
    svc: Service = request.app[SERVICE]
    try:
        offer = await _read_sdp(request)
        codec = request.query.get("codec")
        if codec is not None and codec not in ("vp8", "h264"):
            raise SignallingError(400, f"codec must be vp8 or h264, not {codec!r}")
        session, answer = await svc.sessions.whep(offer, codec)
    except SignallingError as e:
        return _error(request, e.status, e.reason)
    return _sdp_answer(request, "whep", session.id, answer)


async def whip_post(request: web.Request) -> web.Response:
    svc: Service = request.app[SERVICE]
    try:
        offer = await _read_sdp(request)
        session, answer = await svc.sessions.whip(offer)
    except SignallingError as e:
        return _error(request, e.status, e.reason)
    return _sdp_answer(request, "whip", session.id, answer)


def _delete(kind: SessionKind) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        svc: Service = request.app[SERVICE]
        sid = request.match_info["id"]
        session = svc.sessions.by_id.get(sid)
        if session is None or session.kind is not kind:
            return _error(request, 404, f"no {kind.upper()} session {sid!r}")
        await svc.sessions.close(sid)
        return web.Response(status=200)

    return handler


async def not_supported(request: web.Request) -> web.Response:
    return _error(request, 405, "trickle ICE is not supported: send the full offer")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE].health())


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICE].metrics.text()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def api_ice(request: web.Request) -> web.Response:
    """The viewer's RTCConfiguration (STUN/TURN servers, TURN credentials maybe minted)."""
    try:
        body = browser_ice(request.app[SERVICE].config.server)
    except ValueError as e:  # an unreadable secret file
        log.error("%s", e)
        return _error(request, 503, "TURN credentials unavailable")
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def api_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE].stats())


async def api_mode(request: web.Request) -> web.Response:
    svc: Service = request.app[SERVICE]
    if request.content_type != "application/json":
        return _error(request, 415, "Content-Type must be application/json")
    try:
        data = json.loads(await request.content.read(4096))
        svc.set_mode(str(data["mode"]))
    except (ValueError, KeyError, TypeError):
        return _error(request, 400, 'body must be {"mode": "..."}')
    except SignallingError as e:
        return _error(request, e.status, e.reason)
    return web.json_response(svc.describe())


async def api_input(request: web.Request) -> web.StreamResponse:
    """GET /api/input (WebSocket): the players' input events, for the agent of a remote game
    host (stream/input/remote.py, `python -m stream agent`).

    ROLE: publisher (or admin). TODO(auth): check the bearer token here, before the upgrade
    (401 without one, 403 without the role); until then it is as open as the server (no
    [auth]: loopback only)."""
    ws = web.WebSocketResponse()
    if not ws.can_prepare(request).ok:
        return _error(request, 426, "GET /api/input is a WebSocket (Upgrade: websocket)")
    return await request.app[SERVICE].agents.serve(request)


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        request.app[STATIC_DIR] / "index.html", headers={"Cache-Control": "no-cache"}
    )


async def publish_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        request.app[STATIC_DIR] / "publish.html", headers={"Cache-Control": "no-cache"}
    )


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        resp: web.StreamResponse = web.Response(status=204)
    else:
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            if e.status >= 500 or e.status < 400:
                raise
            resp = _error(request, e.status, e.reason)
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, PATCH, OPTIONS"
    resp.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
    resp.headers["Access-Control-Expose-Headers"] = "Location"
    return resp


def make_app(service: Service) -> web.Application:
    cfg = service.config.server
    app = web.Application(client_max_size=cfg.max_body_bytes, middlewares=[cors])
    app[SERVICE] = service
    app[STATIC_DIR] = Path(cfg.static_dir) if cfg.static_dir else STATIC
    app.router.add_get("/", index)
    app.router.add_get("/publish", publish_page)
    app.router.add_static("/static/", app[STATIC_DIR], show_index=False)
    app.router.add_post("/whep", whep_post)
    app.router.add_delete("/whep/{id}", _delete(SessionKind.WHEP))
    app.router.add_patch("/whep/{id}", not_supported)
    app.router.add_post("/whip", whip_post)
    app.router.add_delete("/whip/{id}", _delete(SessionKind.WHIP))
    app.router.add_patch("/whip/{id}", not_supported)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/stats", api_stats)
    app.router.add_get("/api/ice", api_ice)
    app.router.add_post("/api/mode", api_mode)
    app.router.add_get("/api/input", api_input)  # issue 14: remote game hosts' agents

    async def on_startup(app: web.Application) -> None:
        await service.start()

    async def on_shutdown(app: web.Application) -> None:
        await service.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app

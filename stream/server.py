"""`python -m stream serve`: the live service (aiohttp + aiortc).

source ──▶ tee ──▶ FramePipeline (model)    ──▶ SharedEncoder per codec ──▶ every viewer
                └─▶ FramePipeline (bilinear) ──▶ SharedEncoder per codec ──▶ compare tracks

GPU work and encoding run once per frame whatever the number of viewers; the compare
pipeline and each encoder only run while someone is watching them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import av
from aiohttp import web

import infer
from infer.bundled import resolve_model

from . import config as config_mod
from .encoder import SharedEncoder
from .ice import browser_ice
from .metrics import CONTENT_TYPE, Metrics
from .pipeline import FramePipeline
from .sources import Source, open_source
from .webrtc import Sessions, SignallingError

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
SDP = "application/sdp"
SERVICE: web.AppKey[Service] = web.AppKey("service")
STATIC_DIR: web.AppKey[Path] = web.AppKey("static")


class _Feed:
    """One consumer's view of the tee: at most one waiting frame, newest wins."""

    def __init__(self) -> None:
        self.item: av.VideoFrame | None = None
        self.event = asyncio.Event()
        self.closed = False
        self.wanted = True

    def put(self, frame: av.VideoFrame) -> None:
        if self.wanted:
            self.item = frame
            self.event.set()

    def close(self) -> None:
        self.closed = True
        self.event.set()

    def __aiter__(self):  # noqa: ANN204
        return self

    async def __anext__(self) -> av.VideoFrame:
        while self.item is None:
            if self.closed:
                raise StopAsyncIteration
            self.event.clear()
            await self.event.wait()
        frame, self.item = self.item, None
        return frame


class Service:
    """Source, pipelines, encoders and sessions of one running server."""

    def __init__(
        self,
        cfg: config_mod.Config,
        model: infer.Model | None = None,
        model_name: str = "",
        extra_models: dict[str, infer.Model] | None = None,
    ):
        self.config = cfg
        self.model = model
        self.model_name = model_name if model is not None else ""
        # mode name -> model: "model" is the main one, "model:<name>" the extra ones
        self.models: dict[str, infer.Model] = {"model": model} if model is not None else {}
        for name, m in (extra_models or {}).items():
            self.models[f"model:{name}"] = m
        self.started = time.time()
        self.source: Source = open_source(
            cfg.source.uri,
            width=cfg.source.width,
            height=cfg.source.height,
            fps=cfg.source.fps,
            loop=cfg.source.loop,
            marker=cfg.source.marker,
        )
        self.modes = [*self.models, "bilinear", "bicubic", "bypass"]
        mode = cfg.model.mode
        if mode == "model" and model is None:
            mode = "bilinear"
        self.mode = mode
        self._pipes: dict[str, FramePipeline] = {}
        self.encoders: dict[tuple[str, str], SharedEncoder] = {}
        self.metrics = Metrics(self._live)
        self.sessions = Sessions(self)
        self.input_hooks: list = [self._log_input, self.source.on_input]
        self.input_events = 0
        self.reports: dict[str, dict] = {}
        self._tasks: list[asyncio.Task] = []
        self._main_task: asyncio.Task | None = None
        self._main_feed = _Feed()
        self._compare_feed = _Feed()
        self._last_dropped: dict[str, int] = {}
        self._rate_checked: set[str] = set()
        self.device = ""

    # -- pipelines ---------------------------------------------------------------------------

    def pipeline(self, mode: str) -> FramePipeline:
        pipe = self._pipes.get(mode)
        if pipe is None:
            scale = self.config.model.scale
            if mode in self.models:
                pipe = FramePipeline(self.models[mode], mode="model", slots=self.config.model.slots)
            else:
                pipe = FramePipeline(
                    mode=mode,
                    scale=scale,
                    slots=self.config.model.slots,
                    adapter=_adapter(self.config),
                )
            self._pipes[mode] = pipe
            self.device = pipe.device.name
        return pipe

    def encoder(self, stream: str, codec: str) -> SharedEncoder:
        key = (stream, codec)
        enc = self.encoders.get(key)
        if enc is None:
            if stream == "compare" and not self.config.model.compare:
                raise SignallingError(400, "compare stream disabled (model.compare = false)")
            e = self.config.encoder
            gpu = (
                bool(self.device)
                and "cpu" not in self.device.lower()
                and ("llvmpipe" not in self.device.lower())
            )
            enc = SharedEncoder(
                codec,
                bitrate=e.bitrate,
                max_fps=e.max_fps,
                keyframe_interval_s=e.keyframe_interval_s,
                hardware=e.hardware,
                gpu=gpu,
                name=stream,
                rtp_clock=e.rtp_clock,
            )
            self.encoders[key] = enc
        return enc

    async def start(self) -> None:
        self.pipeline(self.mode)  # find the device and compile early
        self._tasks.append(asyncio.ensure_future(self._run_source()))
        self._main_task = asyncio.ensure_future(self._run_pipeline("main", self._main_feed))
        if self.config.model.compare:
            self._tasks.append(
                asyncio.ensure_future(self._run_pipeline("compare", self._compare_feed))
            )
        log.info(
            "serving %s through %s (%s) on %s",
            self.source.kind,
            self.mode,
            self.model_name or "no model",
            self.device,
        )

    async def _run_source(self) -> None:
        try:
            async for frame in self.source.frames():
                self.metrics.frames_in.inc()
                # the GPU works only while someone watches (after a short warm-up that
                # compiles the pipeline for this frame size)
                main = self._pipes.get(self.mode)
                self._main_feed.wanted = (main is None or main.stats.frames_out < 3) or any(
                    e.subscribers for (s, _), e in self.encoders.items() if s == "main"
                )
                self._main_feed.put(frame)
                self._compare_feed.wanted = any(
                    e.subscribers for (s, _), e in self.encoders.items() if s == "compare"
                )
                self._compare_feed.put(frame)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("source %s failed", self.source.kind)
            self.source.state = "failed"

    async def _run_pipeline(self, stream: str, feed: _Feed) -> None:
        while True:
            mode = self.mode if stream == "main" else "bilinear"
            pipe = self.pipeline(mode)
            label = f"{stream}:{mode}"
            frames = pipe.frames(feed, live=True)
            try:
                async for out in frames:
                    self._after_pipeline(stream, label, pipe, out)
                    if stream == "main" and self.mode != mode:
                        break  # mode switched: continue with the other pipeline
                else:
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s pipeline (%s) failed on a frame; continuing", stream, mode)
                await asyncio.sleep(0.5)
            finally:
                await frames.aclose()

    def _check_rate(self, label: str, pipe: FramePipeline, out: av.VideoFrame) -> None:
        """Say once per mode, after warm-up, when the GPU cannot keep up with the source:
        viewers then get the GPU's rate (newest frame wins), which should not surprise."""
        if label in self._rate_checked or pipe.stats.frames_out < 5:
            return
        self._rate_checked.add(label)
        with pipe.stats._lock:
            recent = list(pipe.stats.recent)[-4:]
        per_frame = sorted(t.upload_ms + (t.t_done - t.t_submitted) * 1000 for t in recent)
        ms = per_frame[len(per_frame) // 2]
        fps = self.source.fps or self.config.source.fps
        if ms > 0 and 1000 / ms < 0.9 * fps:
            log.warning(
                "%s takes %.0f ms per frame (%dx%d out) on %s: about %.1f fps against the "
                "source's %g, so viewers get %.1f fps (the newest frame wins); a smaller "
                "source (--width/--height), a lighter model or --mode bilinear keeps up",
                label, ms, out.width, out.height, self.device, 1000 / ms, fps, 1000 / ms,
            )  # fmt: skip
        else:
            log.info("%s takes %.0f ms per frame: keeps up with %g fps", label, ms, fps)

    def _after_pipeline(
        self, stream: str, label: str, pipe: FramePipeline, out: av.VideoFrame
    ) -> None:
        meta = self.source.meta(out.pts)
        timing = None
        with pipe.stats._lock:
            if pipe.stats.recent and pipe.stats.recent[-1].pts == out.pts:
                timing = pipe.stats.recent[-1]
        self.metrics.record_frame(label, timing)
        dropped = pipe.stats.dropped
        delta = dropped - self._last_dropped.get(label, 0)
        if delta > 0:
            self.metrics.frames_dropped.labels(label).inc(delta)
        self._last_dropped[label] = dropped
        if stream == "main" and timing is not None:
            self._check_rate(label, pipe, out)
        if meta is not None and stream == "main":
            if timing is not None:
                meta.stages.update(
                    {
                        "wait": timing.wait_ms,
                        "upload": timing.upload_ms,
                        "submit": timing.submit_ms,
                        "readback": timing.readback_ms,
                        "pipeline": timing.total_ms,
                    }
                )
                if timing.gpu_ms is not None:
                    meta.stages["gpu"] = timing.gpu_ms
            meta.t_processed = time.time()
            meta.stages["source_to_processed"] = (meta.t_processed - meta.t_src) * 1000
        for (s, _codec), enc in self.encoders.items():
            if s == stream:
                # a compare frame gets its own meta so timings of the main one stay intact
                enc.submit(out, meta if stream == "main" else None)

    def set_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise SignallingError(400, f"mode must be one of {self.modes}, not {mode!r}")
        if mode != self.mode:
            log.info("mode: %s -> %s", self.mode, mode)
            self.mode = mode
            for (s, _), enc in self.encoders.items():
                if s == "main":
                    enc.request_keyframe(urgent=True)

    # -- input and reports -------------------------------------------------------------------

    def on_input(self, event: dict, session: str = "") -> None:
        self.input_events += 1
        for hook in self.input_hooks:
            try:
                hook(event)
            except Exception:  # noqa: BLE001 - a broken hook never drops the session
                log.exception("input hook %r failed", hook)

    def _log_input(self, event: dict) -> None:
        if event.get("kind") != "mousemove":
            log.info("input: %s", {k: event[k] for k in list(event)[:6]})

    def on_report(self, session: str, report: dict) -> None:
        self.reports[session] = report

    # -- figures -----------------------------------------------------------------------------

    def describe(self) -> dict:
        return {
            "source": self.source.kind,
            "mode": self.mode,
            "modes": self.modes,
            "model": self.model_name,
            "compare": self.config.model.compare,
        }

    def _live(self) -> dict:
        return {
            "viewers": len(self.sessions.viewers),
            "publishers": len(self.sessions.publishers),
            "encoders": [e.stats() for e in self.encoders.values()],
            "viewer_dropped": self.sessions.viewer_dropped(),
            "source_state": self.source.state,
            "process": self.resources(),
        }

    def health(self) -> dict:
        return {
            "status": "ok" if self.source.state in ("live", "no source", "stalled") else "degraded",
            "device": self.device,
            "model": self.model_name or None,
            "mode": self.mode,
            "source": self.source.info(),
            "viewers": len(self.sessions.viewers),
            "publishers": len(self.sessions.publishers),
            "uptime_s": round(time.time() - self.started, 1),
        }

    def resources(self) -> dict:
        """What a soak watches for leaks (stream/soak.py): this process's resident memory
        and open fds, GPU memory held in wgpu buffers and textures, peer connections still
        open, and the depth of every queue frames wait in."""
        out: dict = {
            "rss_bytes": None,
            "open_fds": None,
            "gpu_bytes": None,
            "threads": threading.active_count(),
        }
        with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm") as f:
            out["rss_bytes"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        with contextlib.suppress(OSError):
            out["open_fds"] = len(os.listdir("/proc/self/fd"))
        with contextlib.suppress(Exception):
            import wgpu

            total = wgpu.diagnostics.object_counts.get_dict()["total"]
            out["gpu_bytes"] = int(total.get("resource_mem", 0))
            out["gpu_objects"] = int(total.get("count", 0))
        queued = [len(t.queue) for s in self.sessions.viewers for t in s.tracks]
        out["peer_connections"] = self.sessions.open_peer_connections()
        out["peer_objects"] = self.sessions.peer_objects()
        out["viewer_queue_packets"] = sum(queued)
        out["viewer_queue_max"] = max(queued, default=0)
        out["encoder_pending"] = sum(e._pending is not None for e in self.encoders.values())
        out["pipeline_in_flight"] = sum(
            max(0, p.stats.frames_in - p.stats.frames_out - p.stats.dropped)
            for p in self._pipes.values()
        )
        return out

    def stats(self) -> dict:
        return {
            **self.health(),
            "process": self.resources(),
            "pipelines": {m: p.stats.summary() for m, p in self._pipes.items()},
            "encoders": [e.stats() for e in self.encoders.values()],
            "sessions": [s.info() for s in self.sessions.by_id.values()],
            "viewer_dropped": self.sessions.viewer_dropped(),
            "input_events": self.input_events,
        }

    async def stop(self) -> None:
        await self.sessions.close_all()
        tasks = [*self._tasks, *([self._main_task] if self._main_task else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for enc in self.encoders.values():
            await enc.close()
        for pipe in self._pipes.values():
            await asyncio.to_thread(pipe.close)  # drains GPU work in flight
        await self.source.close()
        log.info("stopped")


# -- HTTP ---------------------------------------------------------------------------------------


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


def _delete(kind: str):  # noqa: ANN202
    async def handler(request: web.Request) -> web.Response:
        svc: Service = request.app[SERVICE]
        sid = request.match_info["id"]
        session = svc.sessions.by_id.get(sid)
        if session is None or session.kind != kind:
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


async def index(request: web.Request) -> web.Response:
    return web.FileResponse(
        request.app[STATIC_DIR] / "index.html", headers={"Cache-Control": "no-cache"}
    )


async def publish_page(request: web.Request) -> web.Response:
    return web.FileResponse(
        request.app[STATIC_DIR] / "publish.html", headers={"Cache-Control": "no-cache"}
    )


@web.middleware
async def cors(request: web.Request, handler) -> web.StreamResponse:  # noqa: ANN001
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
    app.router.add_delete("/whep/{id}", _delete("whep"))
    app.router.add_patch("/whep/{id}", not_supported)
    app.router.add_post("/whip", whip_post)
    app.router.add_delete("/whip/{id}", _delete("whip"))
    app.router.add_patch("/whip/{id}", not_supported)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/stats", api_stats)
    app.router.add_get("/api/ice", api_ice)
    app.router.add_post("/api/mode", api_mode)

    async def on_startup(app: web.Application) -> None:
        await service.start()

    async def on_shutdown(app: web.Application) -> None:
        await service.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app


def load_model(cfg: config_mod.Config, explicit: bool) -> tuple[infer.Model | None, str]:
    """The configured model, or (None, "") when the default bundled model is not there yet
    (then the service runs the bilinear baseline and says so)."""
    if cfg.model.mode != "model":
        return None, ""
    try:
        path = resolve_model(cfg.model.path)
    except FileNotFoundError as e:
        if explicit:
            raise
        log.warning("%s; serving the bilinear baseline instead", e)
        return None, ""
    return infer.load(str(path), precision=cfg.model.precision, adapter=_adapter(cfg)), Path(
        path
    ).name


def _adapter(cfg: config_mod.Config) -> int | None:
    return None if cfg.server.adapter < 0 else cfg.server.adapter


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m stream serve", description="Serve a processed live stream over WebRTC."
    )
    ap.add_argument("--model", help="ONNX file or bundled model name (default upscale.onnx)")
    ap.add_argument("--source", help="testsrc (default), webrtc (WHIP ingest), or file/URL")
    ap.add_argument("--host", help="listen address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, help="listen port (default 8080)")
    ap.add_argument("--config", help="TOML config (see configs/serve.toml)")
    ap.add_argument("--mode", choices=["model", "bilinear", "bicubic", "bypass"])
    ap.add_argument("--precision", choices=["fp32", "fp16"], help="tensor storage on the GPU")
    ap.add_argument("--width", type=int, help="test scene width (default 640)")
    ap.add_argument("--height", type=int, help="test scene height (default 360)")
    ap.add_argument("--fps", type=float, help="test scene frame rate (default 30)")
    ap.add_argument(
        "--adapter",
        type=int,
        help="GPU adapter index from `python -m stream devices` (default: best)",
    )
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = config_mod.load(
            args.config,
            {
                "model.path": args.model,
                "source.uri": args.source,
                "server.host": args.host,
                "server.port": args.port,
                "model.mode": args.mode,
                "model.precision": args.precision,
                "source.width": args.width,
                "source.height": args.height,
                "source.fps": args.fps,
                "server.adapter": args.adapter,
            },
        )
        explicit = args.model is not None or (
            args.config is not None and "path" in _toml_keys(args.config, "model")
        )
        model, name = load_model(cfg, explicit)
        extra = {
            Path(p).stem: infer.load(
                str(resolve_model(p)), precision=cfg.model.precision, adapter=_adapter(cfg)
            )
            for p in cfg.model.extra
        }
        service = Service(cfg, model, name, extra)
    except (config_mod.ConfigError, FileNotFoundError, infer.ModelError, ValueError) as e:
        print(f"error: {e}")
        return 2
    app = make_app(service)
    print(f"framesmith serving on http://{cfg.server.host}:{cfg.server.port}/", flush=True)
    web.run_app(
        app,
        host=cfg.server.host,
        port=cfg.server.port,
        print=None,
        shutdown_timeout=5.0,
        handle_signals=True,
    )
    return 0


def _toml_keys(path: str, section: str) -> set[str]:
    import tomllib

    with contextlib.suppress(Exception):
        return set(tomllib.loads(Path(path).read_text()).get(section, {}))
    return set()

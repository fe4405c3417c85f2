"""`python -m stream serve`: load the config and the model, start the service and its HTTP."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import ssl
import tempfile
import tomllib
from pathlib import Path

from aiohttp import web

import infer
from infer.bundled import resolve_model

from . import config as config_mod
from . import secretfiles, tls
from .http import make_app
from .service import Service

log = logging.getLogger(__name__)


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
    model = infer.load(str(path), precision=cfg.model.precision, adapter=cfg.server.adapter_index)
    return model, Path(path).name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m stream serve", description="Serve a processed live stream over WebRTC."
    )
    ap.add_argument("--model", help="ONNX file or bundled model name (default upscale.onnx)")
    ap.add_argument(
        "--source",
        help="testsrc (default), webrtc (WHIP ingest), x11:DISPLAY (capture an X display and "
        "inject the players' input: x11::1; x11 = $DISPLAY), or file/URL",
    )
    ap.add_argument("--host", help="listen address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, help="listen port (default 8080)")
    ap.add_argument("--config", help="TOML config (see configs/serve.toml)")
    ap.add_argument("--mode", choices=["model", "bilinear", "bicubic", "planar", "edge", "bypass"])
    ap.add_argument("--precision", choices=["fp32", "fp16"], help="tensor storage on the GPU")
    ap.add_argument("--width", type=int, help="test scene width (default 640)")
    ap.add_argument("--height", type=int, help="test scene height (default 360)")
    ap.add_argument("--fps", type=float, help="test scene / x11 capture rate (default 30)")
    ap.add_argument(
        "--adapter",
        type=int,
        help="GPU adapter index from `python -m stream devices` (default: best)",
    )
    ap.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS (with --tls-key)")
    ap.add_argument("--tls-key", help="PEM private key of --tls-cert")
    ap.add_argument(
        "--tls-self-signed",
        action="store_true",
        default=None,
        help="serve HTTPS with a development certificate made now (browsers warn)",
    )
    ap.add_argument(
        "--insecure-open",
        action="store_true",
        help="allow serving a non-loopback address with no [auth]: anyone who reaches the "
        "port may watch, publish, send input and end sessions",
    )
    ap.add_argument(
        "--adapt",
        choices=["on", "off"],
        help="dynamic resolution: scale the model's input to hold the frame rate (default on)",
    )
    ap.add_argument(
        "--push",
        action="append",
        metavar="URL",
        help="also push the processed stream to rtmp://host/app/key, srt://host:port, "
        "rtp://host:port (an SDP file is written) or whip+http(s)://host/path; repeatable; "
        'replaces [push] urls (README "Audiences beyond one machine")',
    )
    ap.add_argument(
        "--push-token-file",
        metavar="FILE",
        help="file holding the bearer token of whip+ pushes ([push] whip_token_file)",
    )
    ap.add_argument(
        "--audio",
        metavar="SPEC",
        help="game sound to the viewers: pulse (the default sink's monitor on $PULSE_SERVER "
        "or the default server), pulse:NAME (a PulseAudio source, e.g. game.monitor), none, "
        "or beep (a test tone on testsrc's flashes); default auto: pulse for an x11 source "
        "when a server answers ([audio] source)",
    )
    ap.add_argument(
        "--room",
        action="append",
        metavar="NAME=SOURCE",
        help="serve a room NAME with its own source (as --source) at /rooms/NAME/; repeatable; "
        'adds to the config\'s [[rooms]]; without rooms one room serves / (README "Rooms")',
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
                "server.tls_cert": args.tls_cert,
                "server.tls_key": args.tls_key,
                "server.tls_self_signed": args.tls_self_signed,
                "adapt.enabled": None if args.adapt is None else args.adapt == "on",
                "push.urls": args.push,
                "push.whip_token_file": args.push_token_file,
                "audio.source": args.audio,
            },
        )
        cfg = with_rooms(cfg, args.room or [])
        refuse_open_network(cfg, args.insecure_open)
        secretfiles.check(cfg)  # a placeholder secret (change-me) stops the start
        ssl_context = tls_context(cfg)
        explicit = args.model is not None or (
            args.config is not None and "path" in _toml_keys(args.config, "model")
        )
        model, name = load_model(cfg, explicit)
        extra = {
            Path(p).stem: infer.load(
                str(resolve_model(p)),
                precision=cfg.model.precision,
                adapter=cfg.server.adapter_index,
            )
            for p in cfg.model.extra
        }
        room_models = {
            spec.model: load_model(
                cfg.model_copy(
                    update={
                        "model": cfg.model.model_copy(update={"path": spec.model, "mode": "model"})
                    }
                ),
                True,
            )
            for spec in cfg.rooms
            if spec.model is not None
        }
        service = Service(cfg, model, name, extra, room_models)
    except (config_mod.ConfigError, FileNotFoundError, infer.ModelError, ValueError) as e:
        print(f"error: {e}")
        return 2
    try:
        app = make_app(service, tls=ssl_context is not None)
    except ValueError as e:  # an unreadable or too short [auth] secret
        print(f"error: {e}")
        return 2
    scheme = "https" if ssl_context is not None else "http"
    print(f"framesmith serving on {scheme}://{cfg.server.host}:{cfg.server.port}/", flush=True)
    web.run_app(
        app,
        host=cfg.server.host,
        port=cfg.server.port,
        ssl_context=ssl_context,
        print=None,
        shutdown_timeout=5.0,
        handle_signals=True,
    )
    return 0


def with_rooms(cfg: config_mod.Config, specs: list[str]) -> config_mod.Config:
    """The config with each --room NAME=SOURCE added to its [[rooms]]."""
    rooms = [r.model_dump() for r in cfg.rooms]
    for spec in specs:
        name, eq, source = spec.partition("=")
        if not eq:
            raise config_mod.ConfigError(f"--room must be NAME=SOURCE, not {spec!r}")
        rooms.append({"name": name, "source": source})
    if not specs:
        return cfg
    return config_mod.validate_as(config_mod.Config, {**cfg.model_dump(), "rooms": rooms}, "--room")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_open_network(cfg: config_mod.Config, insecure_open: bool) -> None:
    """Secure by default: no [auth] is a developer's own machine, so loopback only."""
    if cfg.auth.enabled or is_loopback(cfg.server.host):
        return
    if not insecure_open:
        raise config_mod.ConfigError(
            f"refusing to serve {cfg.server.host} with no [auth]: anyone who reaches the port "
            "could watch, publish, send input to the game and end sessions. Add an [auth] "
            'section with secret_file (see configs/serve.toml and README "Security"), or '
            "pass --insecure-open to serve it open anyway"
        )
    log.warning("--insecure-open: serving %s with no auth; anyone may do anything", cfg.server.host)


def tls_context(cfg: config_mod.Config) -> ssl.SSLContext | None:
    srv = cfg.server
    if srv.tls_self_signed:
        folder = Path(tempfile.mkdtemp(prefix="framesmith-tls-"))
        cert, key, fingerprint = tls.self_signed(folder, srv.host)
        log.warning(
            "serving HTTPS with a self-signed development certificate (%s); its SHA-256 "
            "fingerprint is %s: check it before accepting the browser's warning",
            cert,
            fingerprint,
        )
        return tls.context(str(cert), str(key))
    if srv.tls_cert:
        return tls.context(srv.tls_cert, srv.tls_key)
    return None


def _toml_keys(path: str, section: str) -> set[str]:
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError, AttributeError):
        return set(tomllib.loads(Path(path).read_text()).get(section, {}))
    return set()

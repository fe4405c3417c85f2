"""`python -m stream agent --display :0 --url https://server:8080 --token-file F`: the players'
input, injected into the X display of a game host that publishes over WHIP.

The game host streams its screen to the server (OBS, FFmpeg or the publish page, over WHIP)
and runs this next to the game. It connects to the server's `GET /api/input` WebSocket (the
publisher role: its token goes in `Authorization: Bearer`), and every event it gets is checked
again (stream/input/events.py: the agent trusts no server blindly) and injected with the same
XTEST code as a server that captures its own display (xtest.py). A "release" message, or the
connection dropping, lets go of every key and button; the agent then reconnects with a
backoff (1 s doubling to 10 s). A refused token (401/403) ends it: retrying cannot help.

The token is a publisher's: it goes only over TLS (https:// or wss://), plain http:// or ws://
only to a loopback server (nothing on the wire). It is read from a file or $FRAMESMITH_TOKEN,
never taken from the command line, where any local user sees it in the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..config import ConfigError
from ..config import load as load_config
from .events import InjectError, InputError, parse_input
from .gamepad import GamepadMode, GamepadSink, parse_gamepad
from .policy import InputPolicy
from .xtest import XTestInjector

log = logging.getLogger(__name__)

RETRY_FIRST_S = 1.0
RETRY_MAX_S = 10.0


class AuthRefused(RuntimeError):
    """The server refused the token: retrying cannot help."""


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def input_url(url: str) -> str:
    """The WebSocket URL of /api/input from the server's base URL (or the URL itself).
    ValueError for a plain-text URL to anything but loopback: the publisher token would
    cross the network readable by anyone on the path."""
    url = url.rstrip("/")
    if url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    elif url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    elif not url.startswith(("ws://", "wss://")):
        raise ValueError(f"--url must be https:// or wss://, not {shown(url)!r}")
    if url.startswith("ws://") and not _loopback(urlsplit(url).hostname or ""):
        raise ValueError(
            f"--url {shown(url)!r} is plain text: the agent sends a publisher token, so it "
            "connects over TLS only (https:// or wss://), plain http:// or ws:// only to a "
            "loopback address"
        )
    return url if url.endswith("/api/input") else url + "/api/input"


def shown(url: str) -> str:
    """The URL for a log line: no user:password@, query or fragment (a ?token=...)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    with contextlib.suppress(ValueError):
        if parts.port:
            host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" + ("?***" if parts.query else "")


def read_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as e:
        raise ValueError(f"--token-file {path!r}: {e.strerror}") from None
    if not token:
        raise ValueError(f"--token-file {path!r} is empty")
    return token


class Agent:
    def __init__(
        self,
        injector: XTestInjector,
        url: str,
        token: str = "",
        *,
        gamepad: GamepadMode = "auto",
        gamepad_keys: dict[str, str] | None = None,
    ) -> None:
        self.injector = injector
        self.pads = GamepadSink(injector, gamepad, gamepad_keys)  # "gamepad" messages too
        self.url = input_url(url)
        self.shown = shown(self.url)
        self.token = token
        self.injected = 0
        self.refused = 0

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        session = message.get("session")
        if not isinstance(session, str) or not session:
            return
        if kind == "release":
            self.pads.release(session)  # its pads, keys and buttons
            return
        if kind not in ("input", "gamepad"):
            return
        try:
            event = parse_gamepad(message) if kind == "gamepad" else parse_input(message)
            self.pads.send(session, event)
            self.injected += 1
        except (InputError, InjectError) as e:
            self.refused += 1
            log.info("agent: event refused: %r", str(e))

    async def session(self, http: aiohttp.ClientSession) -> None:
        """One connection, until it ends."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            ws = await http.ws_connect(self.url, headers=headers, heartbeat=10.0)
        except aiohttp.WSServerHandshakeError as e:
            if e.status in (401, 403):
                raise AuthRefused(f"{self.shown}: {e.status} {e.message!r}") from None
            raise
        log.info(
            "agent: connected to %s, injecting into %s", self.shown, self.injector.display_name
        )
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    self.handle(data)
        finally:
            self.pads.release_all()
            self.injector.release_all()
            await ws.close()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Connect, and reconnect after every drop, until `stop` is set (or AuthRefused)."""
        stop = stop or asyncio.Event()
        retry = RETRY_FIRST_S
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                try:
                    await self.session(http)
                    retry = RETRY_FIRST_S
                    log.warning("agent: the server closed the connection; reconnecting")
                except AuthRefused:
                    raise
                except (aiohttp.ClientError, OSError) as e:
                    log.warning("agent: %s: %r; retrying in %g s", self.shown, str(e), retry)
                    retry = min(retry * 2, RETRY_MAX_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), retry)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m stream agent",
        allow_abbrev=False,  # `--token T` must not pass for --token-file
        description="Inject the players' input from a framesmith server into this host's X "
        "display (a game host that publishes over WHIP).",
    )
    ap.add_argument("--display", default=os.environ.get("DISPLAY", ""), help="default $DISPLAY")
    ap.add_argument("--url", required=True, help="the server, e.g. https://stream.example:8080")
    ap.add_argument(
        "--token-file",
        default="",
        help="a file holding a publisher token (python -m stream token --role publisher "
        "> FILE); default: $FRAMESMITH_TOKEN",
    )
    ap.add_argument("--keymap", choices=("keysym", "evdev"), default=None, help="default keysym")
    ap.add_argument(
        "--config",
        default=None,
        help="a TOML file whose [input] table sets the policy (window, keys, allow_chords, "
        "unicode: as serve's); without it the defaults: chords blocked, no Unicode remaps",
    )
    ap.add_argument(
        "--window", default=None, help="confine the pointer to this X window (id or title)"
    )
    ap.add_argument(
        "--gamepad",
        choices=("auto", "uinput", "keys", "off"),
        default=None,
        help="players' pads as virtual Xbox 360 pads (uinput), as keys ([input.gamepad_keys] "
        "of --config over the default profile), auto (uinput where /dev/uinput is writable) "
        "or off; default: --config's [input] gamepad, else auto",
    )
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        input_url(args.url)  # before the display: a plain-text URL is refused at once
        token = read_token(args.token_file) if args.token_file else ""
    except ValueError as e:
        print(f"error: {e}")
        return 2
    token = token or os.environ.get("FRAMESMITH_TOKEN", "")
    if not args.display:
        print("error: no X display: --display :0, or set $DISPLAY")
        return 2
    try:
        cfg = load_config(args.config).input
        policy = InputPolicy.from_config(cfg)
        if args.window is not None:
            policy.window = args.window.strip()
        injector = XTestInjector(args.display, keymap=args.keymap or cfg.keymap, policy=policy)
        if not injector.ready(10.0):
            print(f"error: cannot open X display {args.display} (is it running? xhost?)")
            return 2
        agent = Agent(
            injector,
            args.url,
            token,
            gamepad=args.gamepad or cfg.gamepad,
            gamepad_keys=cfg.gamepad_keys,
        )
        asyncio.run(agent.run())
    except (ValueError, ConfigError) as e:
        print(f"error: {e}")
        return 2
    except AuthRefused as e:
        print(f"error: the server refused the token ({e}): a publisher token is needed")
        return 2
    except KeyboardInterrupt:
        pass
    return 0

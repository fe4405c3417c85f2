"""The "control" data channel of a viewer session (JSON text messages).

server -> page  {"type": "frame", "n", "t_src", "t_sent", "stages": {...}}  per frame sent
                {"type": "pong", "t": <page's ping time>, "server": <server ms>}
                {"type": "hello", "session", "codec", "source", "mode", "modes", ...}
                {"type": "control", "mode", "allowed", "you", "controller"}  who drives
                {"type": "input_ack", "id", "ok", "reason", "t_recv", "t_injected"}  for an
                input that carried an "id", or (at most once a second) a refused one
page -> server  {"type": "ping", "t"}    clock offset for glass-to-glass latency
                {"type": "input", "kind": "keydown"|"keyup"|"mousemove"|"mousedown"|..}
                checked by stream/input/events.py (its docstring has every field)
                {"type": "control", "take": true|false}  take over (or give up) control
                {"type": "c2p", "total", ...}  one click-to-photon sample (stream/input/latency)
                {"type": "report", ...}  the page's own figures (kept for /api/stats)

Roles (DESIGN "Auth"): every message here needs the viewer role; "input" and "control" act
only for sessions the host's `can_control` allows (the player role), and are refused with a
reason otherwise.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ..input.events import InputError, parse_input

if TYPE_CHECKING:
    import av
    from aiortc import RTCDataChannel

    from ..sources import FrameMeta
    from .host import SessionHost

log = logging.getLogger(__name__)

MAX_MESSAGE = 4096  # bytes of one page -> server message
MAX_BUFFERED = 256 * 1024  # per-frame messages wait while the channel holds this much
REPORT_KEYS = 40


class TokenBucket:
    """`rate` events a second, bursts of `burst`; what goes over is counted, not queued."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.t = time.monotonic()
        self.dropped = 0

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens < 1:
            self.dropped += 1
            return False
        self.tokens -= 1
        return True


class ControlChannel:
    """One session's side of the control channel."""

    INPUT_RATE = 250.0  # input events a second a viewer may send (more are dropped)
    INPUT_BURST = 100.0

    def __init__(self, session: str, codec: str, host: SessionHost) -> None:
        self.session = session
        self.codec = codec
        self.host = host
        self.channel: RTCDataChannel | None = None
        self.report: dict[str, Any] = {}
        self.input = TokenBucket(self.INPUT_RATE, self.INPUT_BURST)
        self.input_refused = 0
        self._refusal_told = 0.0

    def attach(self, channel: RTCDataChannel) -> None:
        self.channel = channel

        @channel.on("open")
        def _open() -> None:
            self.hello()

        @channel.on("message")
        def _message(msg: str | bytes) -> None:
            self.on_message(msg)

        if channel.readyState == "open":
            self.hello()

    def send(self, message: dict[str, Any]) -> None:
        ch = self.channel
        if ch is not None and ch.readyState == "open":
            ch.send(json.dumps(message))

    def hello(self) -> None:
        self.send(
            {"type": "hello", "session": self.session, "codec": self.codec, **self.host.describe()}
        )
        self.send(self.host.on_control(self.session, None))

    def frame_sent(self, meta: FrameMeta, packet: av.Packet) -> None:
        """A frame's packet left for this viewer: when it was born and what each stage took."""
        ch = self.channel
        if ch is None or ch.readyState != "open" or ch.bufferedAmount > MAX_BUFFERED:
            return
        now = time.time()
        self.send(
            {
                "type": "frame",
                "n": meta.n,
                "pts": meta.pts,
                "t_src": round(meta.t_src * 1000, 3),
                "t_sent": round(now * 1000, 3),
                "key": bool(packet.is_keyframe),
                "bytes": packet.size,
                "stages": {k: round(v, 3) for k, v in meta.stages.items()},
                "server_ms": round((now - meta.t_src) * 1000, 3),
            }
        )

    def on_message(self, msg: str | bytes) -> None:
        if not isinstance(msg, str) or len(msg) > MAX_MESSAGE:
            return
        try:
            data = json.loads(msg)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind == "ping":
            self.send({"type": "pong", "t": data.get("t"), "server": time.time() * 1000})
        elif kind == "input":
            if self.input.allow():
                self._input(data)
        elif kind == "control":
            take = data.get("take")
            self.send(self.host.on_control(self.session, take if isinstance(take, bool) else None))
        elif kind == "c2p":
            self.host.on_click_to_photon(self.session, data)
        elif kind == "report":
            data.pop("type", None)
            self.report = {k: v for k, v in list(data.items())[:REPORT_KEYS]}
            self.host.on_report(self.session, self.report)

    def _input(self, data: dict[str, Any]) -> None:
        """A checked event to the host; refused ones are answered (with an id: always; without:
        once a second) and do nothing else."""
        raw_id = data.get("id")
        try:
            event = parse_input(data)
        except InputError as e:
            self.input_refused += 1
            self._answer(raw_id if isinstance(raw_id, int) else None, False, str(e))
            return
        outcome = self.host.on_input(event, self.session)
        if not outcome.ok:
            self.input_refused += 1
        if event.id is not None or not outcome.ok:
            self._answer(event.id, outcome.ok, outcome.reason, outcome.ack(event.id))

    def _answer(
        self, event_id: int | None, ok: bool, reason: str, ack: dict[str, Any] | None = None
    ) -> None:
        now = time.monotonic()
        if event_id is None and now - self._refusal_told < 1.0:
            return
        if event_id is None:
            self._refusal_told = now
        msg = {"type": "input_ack", "id": event_id, "ok": ok, "reason": reason}
        self.send(ack if ack is not None else msg)

"""The "control" data channel of a session (JSON text messages), with a right and a rate per
message type.

  server -> page  {"type": "frame", "n", "t_src", "t_sent", "stages", "scale", "mode"}  a frame
                  {"type": "pong", "t": <page's ping time>, "server": <server ms>}
                  {"type": "hello", "session", "codec", "role", "may", "source", "mode", ...}
                  {"type": "control", "mode", "allowed", "you", "controller"}  who drives
                  {"type": "input_ack", "id", "ok", "reason", "t_recv", "t_injected"}  for an
                  input that carried an "id", or (at most once a second) a refused one
  page -> server  {"type": "ping", "t"}       any role  clock offset for glass-to-glass latency
                  {"type": "report", ...}     any role  the page's own figures (/api/stats)
                  {"type": "input", ...}      player    keyboard and mouse, checked by
                                                        stream/input/events.py (every field)
                  {"type": "control", "take"} player    take over (or give up) control
                  {"type": "c2p", ...}        player    one click-to-photon sample
                  {"type": "gamepad", ...}    player    a pad's whole state, checked by
                                                        stream/input/gamepad.py; own rate
                  {"type": "clipboard", "text"} player  the page's paste, size-capped
                                                        (stream/input/clipboard.py)
                  {"type": "placement", "placement", "reason", "model_ms", "frame_ms"}
                                              any role  upscale here or on the server
                                                        (stream/placement.py); answered
                                                        {"type": "placement", "placement"}
  server -> page  {"type": "clipboard", "text"}  to the players in control: an X client copied
                  {"type": "preparing", "model", "phase", "done", "total", "serving",
                  "elapsed_s"}  to every role: a model being made ready while a cheap mode
                  serves, at each step (stream/preparing.py; the hello's "preparing" too)

A message over its type's rate, of a type the session's role may not send, too big, not
JSON, nested too deep or not matching its schema is dropped and counted (`refused`); it never
closes the session. Input also acts only while the host lets this session control the game
(one controlling player at a time by default: stream/input/control.py).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..auth import RIGHTS, Right, Role
from ..encode import layer_of
from ..input.clipboard import parse_clipboard
from ..input.events import InputError, parse_input
from ..input.gamepad import parse_gamepad
from ..limits import TokenBucket

if TYPE_CHECKING:
    import av
    from aiortc import RTCDataChannel

    from ..sources import FrameMeta
    from .host import SessionHost

log = logging.getLogger(__name__)

MAX_MESSAGE = 4096  # bytes of one page -> server message
MAX_BUFFERED = 256 * 1024  # per-frame messages wait while the channel holds this much
REPORT_KEYS = 40
REPORT_TEXT = 64  # characters of a report's string value


@dataclass(frozen=True)
class MessageRule:
    right: Right
    rate: float  # messages a second ...
    burst: float  # ... in bursts of this many


RULES = {
    "ping": MessageRule(Right.SESSION, 5, 10),
    "report": MessageRule(Right.SESSION, 2, 4),
    "input": MessageRule(Right.PLAY, 250, 100),
    "control": MessageRule(Right.PLAY, 2, 4),
    "c2p": MessageRule(Right.PLAY, 10, 20),
    # the page sends a pad's state on change, at most 60 a second a pad (4 pads)
    "gamepad": MessageRule(Right.PLAY, 250, 120),
    "clipboard": MessageRule(Right.PLAY, 2, 5),  # a paste is a person's key press
    # a page switches where its picture is upscaled: by hand, or auto when it falls behind
    "placement": MessageRule(Right.SESSION, 1, 4),
}


PARSERS = {"input": parse_input, "gamepad": parse_gamepad, "clipboard": parse_clipboard}


@dataclass
class Counters:
    received: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


class ControlChannel:
    """One session's side of the control channel."""

    def __init__(
        self, session: str, codec: str, host: SessionHost, role: Role = Role.ADMIN
    ) -> None:
        self.session = session
        self.codec = codec
        self.host = host
        self.role = role
        self.channel: RTCDataChannel | None = None
        self.report: dict[str, Any] = {}
        self.buckets = {kind: TokenBucket(r.rate, r.burst) for kind, r in RULES.items()}
        self.counters = Counters()
        self.input_refused = 0  # input events checked and refused (by role, schema or host)
        self._refusal_told = 0.0

    @property
    def input(self) -> TokenBucket:
        return self.buckets["input"]

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
            {
                "type": "hello",
                "session": self.session,
                "codec": self.codec,
                "role": str(self.role),
                "may": sorted(str(r) for r in RIGHTS[self.role]),
                **self.host.describe(),
            }
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
                "scale": meta.scale,
                "mode": meta.mode,
                "tl": None if (layer := layer_of(packet)) is None else layer.tid,
            }
        )

    def on_message(self, msg: str | bytes) -> None:
        self.counters.received += 1
        data = self._parse(msg)
        if data is None:
            return
        kind = data.get("type")
        rule = RULES.get(kind) if isinstance(kind, str) else None
        if rule is None:
            self.counters.refuse("unknown type")
            return
        if rule.right not in RIGHTS[self.role]:
            reason = f"{kind}: not for the {self.role} role"
            self.counters.refuse(reason)
            if kind in ("input", "gamepad", "clipboard"):
                self.input_refused += 1
                self._answer(None, False, reason)
            return
        if not self.buckets[str(kind)].allow():
            self.counters.refuse(f"{kind}: over its rate")
            return
        if kind == "ping":
            t = data.get("t")
            self.send(
                {"type": "pong", "t": t if _number(t) else None, "server": time.time() * 1000}
            )
        elif kind == "input":
            self._input(data)
        elif kind in ("gamepad", "clipboard"):
            self._input(data, str(kind))
        elif kind == "control":
            take = data.get("take")
            self.send(self.host.on_control(self.session, take if isinstance(take, bool) else None))
        elif kind == "c2p":
            self.host.on_click_to_photon(self.session, data)
        elif kind == "placement":
            self.send(self.host.on_placement(self.session, data))
        elif kind == "report":
            self.report = _flat(data)
            self.host.on_report(self.session, self.report)

    def _input(self, data: dict[str, Any], kind: str = "input") -> None:
        """A checked event (input, a pad's state, a paste) to the host; refused ones are
        answered (with an id: always; without: once a second) and do nothing else."""
        raw_id = data.get("id") if kind == "input" else None  # a pad's "id" is its name
        try:
            event = PARSERS[kind](data)
        except InputError as e:
            self.input_refused += 1
            self.counters.refuse(f"{kind}: not a valid event")
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

    def _parse(self, msg: str | bytes) -> dict[str, Any] | None:
        if not isinstance(msg, str) or len(msg) > MAX_MESSAGE:
            self.counters.refuse("not text or too big")
            return None
        try:
            data = json.loads(msg)
        except (ValueError, RecursionError):  # '[' * 1100 is a RecursionError in json
            self.counters.refuse("not JSON")
            return None
        if not isinstance(data, dict):
            self.counters.refuse("not an object")
            return None
        return data


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    """A report kept as flat scalars only (nothing nested, strings and keys short)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k == "type" or not isinstance(k, str) or len(k) > REPORT_TEXT:
            continue
        if isinstance(v, str):
            out[k] = v[:REPORT_TEXT]
        elif v is None or isinstance(v, (bool, int, float)):
            out[k] = v
        if len(out) >= REPORT_KEYS:
            break
    return out

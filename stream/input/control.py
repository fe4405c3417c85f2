"""Who drives the game, and where a player's events go.

A checked event (events.py) from a session reaches `InputControl.submit`, which refuses it
(with the reason, nothing injected) unless:
1. the service's `may_control(session)` says yes: THE AUTH HOOK. With no auth configured on
   loopback every viewer is a player; the roles work (DESIGN: viewer / player / publisher /
   admin) makes it "this session's token has the player (or admin) role";
2. in "single" control (the default) the session is the controlling player. With nobody in
   control, the first player to send input takes it (`auto_take`); another player takes it
   over with {"type": "control", "take": true} (the page's "take control" button), which
   first releases whatever the previous player held. "shared" lets every player drive.
Then `inject(session, event)` hands it to every sink: the X display of an x11 source (XTEST),
the agents of remote game hosts (GET /api/input), the test scene. When a session leaves or
dies, `session_closed` releases everything it held in every sink and frees control.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .events import InjectError, InputEvent

log = logging.getLogger(__name__)

ControlMode = Literal["single", "shared"]


class InputSink(Protocol):
    """Somewhere input is injected: an X display, remote agents, the test scene."""

    def send(self, session: str, event: InputEvent) -> None:
        """Inject (InjectError: it could not be, with the reason)."""
        ...

    def release(self, session: str) -> None:
        """Let go of every key and button the session holds."""
        ...


def accepts(sink: InputSink, kind: str) -> bool:
    """Whether a sink takes events of this kind: one with an `accepts(kind)` method says,
    others take keys, mouse and pads (a clipboard's text goes only where it is asked for)."""
    ask = getattr(sink, "accepts", None)
    return bool(ask(kind)) if callable(ask) else kind != "clipboard"


class CallbackSink:
    """Events handed to a callback as their JSON message (the test scene's cursor); nothing
    is held, so nothing to release."""

    def __init__(self, callback: Callable[[dict[str, Any], str], None]) -> None:
        self.callback = callback  # (event as its JSON message, session id)

    def send(self, session: str, event: InputEvent) -> None:
        self.callback(event.as_message(), session)

    def release(self, session: str) -> None:
        pass


@dataclass
class InputOutcome:
    """What happened to one event (the page's acknowledgement: click-to-photon's first
    stages)."""

    ok: bool
    reason: str = ""
    t_recv: float = 0.0  # server clock, ms since the epoch
    t_injected: float | None = None

    def ack(self, event_id: int | None) -> dict[str, Any]:
        return {
            "type": "input_ack",
            "id": event_id,
            "ok": self.ok,
            "reason": self.reason,
            "t_recv": round(self.t_recv, 3),
            "t_injected": round(self.t_injected, 3) if self.t_injected is not None else None,
        }


class InputControl:
    def __init__(
        self,
        *,
        mode: ControlMode = "single",
        auto_take: bool = True,
        may_control: Callable[[str], bool],
        notify: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.mode = mode
        self.auto_take = auto_take
        self.may_control = may_control
        self.notify = notify or (lambda session, message: None)
        self.sinks: list[InputSink] = []
        self.controller: str | None = None
        self.sessions: set[str] = set()  # sessions told about control so far
        self.injected = 0
        self.refused: Counter[str] = Counter()

    # -- events ------------------------------------------------------------------------------

    def submit(self, session: str, event: InputEvent) -> InputOutcome:
        """A player's event: injected when this session may control now, else refused."""
        t_recv = time.time() * 1000
        if not self.may_control(session):
            return self._refuse(
                "role", "viewer only: this session may not control (player role needed)"
            )
        if self.mode == "single" and self.controller != session:
            if self.controller is None and self.auto_take:
                self._set_controller(session)
            else:
                return self._refuse(
                    "not_controller",
                    'another player has control; take it with {"type": "control", "take": true}',
                )
        return self.inject(session, event, t_recv)

    def inject(self, session: str, event: InputEvent, t_recv: float = 0.0) -> InputOutcome:
        """Every sink that takes this kind gets the event; called only for sessions allowed
        to control."""
        errors = []
        sinks = [sink for sink in self.sinks if accepts(sink, event.kind)]
        for sink in sinks:
            try:
                sink.send(session, event)
            except InjectError as e:
                errors.append(str(e))
        t_done = time.time() * 1000
        if not sinks:
            return self._refuse("no_sink", f"nothing here takes {event.kind} events", t_recv)
        if errors and len(errors) == len(sinks):
            return self._refuse("inject", "; ".join(errors), t_recv)
        self.injected += 1
        return InputOutcome(True, "; ".join(errors), t_recv or t_done, t_done)

    def _refuse(self, why: str, reason: str, t_recv: float = 0.0) -> InputOutcome:
        self.refused[why] += 1
        return InputOutcome(False, reason, t_recv or time.time() * 1000)

    # -- control -----------------------------------------------------------------------------

    def state(self, session: str) -> dict[str, Any]:
        """The "control" message a session's page shows (its button and status)."""
        self.sessions.add(session)
        allowed = self.may_control(session)
        you = allowed and (self.mode == "shared" or self.controller == session)
        return {
            "type": "control",
            "mode": self.mode,
            "allowed": allowed,
            "you": you,
            "controller": "you" if you else ("other" if self.controller else "none"),
        }

    def tell(self, message: dict[str, Any]) -> None:
        """A message to every session whose input acts now (the clipboard: an X copy)."""
        for s in list(self.sessions):
            if self.may_control(s) and (self.mode == "shared" or self.controller == s):
                self.notify(s, message)

    def take(self, session: str, take: bool = True) -> dict[str, Any]:
        """{"type": "control", "take": true|false} from a session: take control (the previous
        player's held keys and buttons are released first) or give it up."""
        if self.mode == "single" and self.may_control(session):
            if take and self.controller != session:
                self._set_controller(session)
            elif not take and self.controller == session:
                self._set_controller(None)
        return self.state(session)

    def _set_controller(self, session: str | None) -> None:
        old, self.controller = self.controller, session
        if old is not None:
            self._release(old)
        log.info("input: control %s -> %s", old or "nobody", session or "nobody")
        for s in list(self.sessions):
            self.notify(s, self.state(s))

    def _release(self, session: str) -> None:
        for sink in self.sinks:
            try:
                sink.release(session)
            except InjectError as e:
                log.info("input: releasing %s: %s", session, e)

    def session_closed(self, session: str) -> None:
        """A session left or died: nothing it held stays held, and control is free again."""
        self.sessions.discard(session)
        if self.controller == session:
            self._set_controller(None)  # releases it
        else:
            self._release(session)

    def stats(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "controller": self.controller is not None,
            "injected": self.injected,
            "refused": dict(self.refused),
        }

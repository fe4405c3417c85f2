"""Gamepads: a player's pad state from the page's Gamepad API, checked, and turned into keys
(XTEST) or a virtual pad (uinput) on the game's side.

    {"type": "gamepad", "index": 0..3, "id": "<the browser's pad name>",
     "buttons": [17 values 0..1], "axes": [4 values -1..1], "t": ms}

The order is the W3C "standard" mapping (https://w3c.github.io/gamepad/#remapping): buttons A B
X Y, LB RB LT RT, Back Start, LS RS (stick clicks), d-pad up down left right, Home; axes left
stick x y, right stick x y (up and left are -1). The page sends a pad's whole state when it
changes, so a lost or refused message is healed by the next one and the server keeps no
history beyond the last state.

A gamepad event is an `InputEvent` of kind "gamepad": it reaches the sinks through
`InputControl.submit` like keys and the mouse, so only the controlling player's pad acts, and
`release(session)` (the player left or lost control) lets go of everything it held. Where it
goes (`[input] gamepad`):

- "keys": the pad presses keys and the mouse through the same XTEST injector as the keyboard
  (so the `[input]` policy judges every key, and the window fence holds the pointer). The
  profile maps buttons and stick directions (past +-0.5) to DOM key codes or mouse buttons
  ("MouseLeft", "MouseMiddle", "MouseRight"): DEFAULT_KEYS, changed by `[input.gamepad_keys]`
  (a button's name or index -> a code, "" to unmap). A key is held while any control mapped
  to it is; keys go up before new ones go down. The right stick, while no rs_* direction is
  mapped, moves the pointer relatively (AIM_SPEED pixels a second at full tilt, a squared
  curve past a dead zone), AIM_HZ times a second on the event loop while it is pushed.
- "uinput": a virtual Xbox 360 pad per pad index (uinput.py) where /dev/uinput is writable,
  for games that read pads themselves (SDL, evdev).
- "auto": uinput where /dev/uinput is writable, else keys. "off": refused (service.py).
Remote game hosts get the message itself (AgentHub) and map it the same way (agent.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .events import InjectError, InputError, InputEvent
from .keys import DOM_CODES

log = logging.getLogger(__name__)

GamepadMode = Literal["auto", "uinput", "keys", "off"]

# W3C standard mapping, in order
BUTTONS = (
    "a", "b", "x", "y", "lb", "rb", "lt", "rt", "back", "start", "ls", "rs",
    "up", "down", "left", "right", "home",
)  # fmt: skip
AXES = ("lx", "ly", "rx", "ry")
STICK = ("ls_left", "ls_right", "ls_up", "ls_down", "rs_left", "rs_right", "rs_up", "rs_down")
CONTROLS = (*BUTTONS, *STICK)
PADS = 4  # indices 0..3
MAX_ID = 128  # characters of the browser's pad name ("Xbox 360 Controller (XInput STANDARD
# GAMEPAD)" is 43; Chromium adds vendor and product ids)
PRESSED = 0.5  # a button's value from which it counts as pressed (W3C: the `pressed` threshold)
STICK_PAST = 0.5  # a stick past this counts as a direction
MOUSE_BUTTONS = {"MouseLeft": 0, "MouseMiddle": 1, "MouseRight": 2}  # -> DOM button
AIM_DEAD = 0.2  # the right stick's dead zone as a pointer
AIM_SPEED = 1000.0  # pixels a second at full tilt
AIM_HZ = 60.0

DEFAULT_KEYS: dict[str, str] = {
    "up": "ArrowUp",
    "down": "ArrowDown",
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "ls_up": "ArrowUp",
    "ls_down": "ArrowDown",
    "ls_left": "ArrowLeft",
    "ls_right": "ArrowRight",
    "a": "Space",
    "b": "ControlLeft",
    "x": "ShiftLeft",
    "y": "AltLeft",
    "start": "Enter",
    "back": "Escape",
    "rt": "MouseLeft",  # with the right stick as the pointer
    "lt": "MouseRight",
}


@dataclass(frozen=True)
class GamepadEvent(InputEvent):
    """One pad's whole state (InputEvent's `id` stays the acknowledgement id; the pad's name
    is `pad_id`)."""

    kind: str = "gamepad"
    index: int = 0
    pad_id: str = ""
    buttons: tuple[float, ...] = (0.0,) * len(BUTTONS)
    axes: tuple[float, ...] = (0.0,) * len(AXES)

    def as_message(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "gamepad",
            "index": self.index,
            "id": self.pad_id,
            "buttons": list(self.buttons),
            "axes": list(self.axes),
        }
        if self.t is not None:
            out["t"] = self.t
        return out

    def controls(self) -> frozenset[str]:
        """The buttons pressed and the stick directions pushed (names of CONTROLS)."""
        down = {name for name, v in zip(BUTTONS, self.buttons, strict=True) if v >= PRESSED}
        lx, ly, rx, ry = self.axes
        for stick, x, y in (("ls", lx, ly), ("rs", rx, ry)):
            if x <= -STICK_PAST:
                down.add(f"{stick}_left")
            if x >= STICK_PAST:
                down.add(f"{stick}_right")
            if y <= -STICK_PAST:
                down.add(f"{stick}_up")
            if y >= STICK_PAST:
                down.add(f"{stick}_down")
        return frozenset(down)


def _values(data: dict[str, Any], name: str, n: int, lo: float) -> tuple[float, ...]:
    v = data.get(name)
    if not isinstance(v, list) or len(v) != n:
        raise InputError(f"{name} must be a list of {n} numbers")
    out = []
    for x in v:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise InputError(f"{name} must hold numbers only, not {x!r:.40}")
        if not lo <= x <= 1.0:
            raise InputError(f"{name}: {x:g} is out of range ({lo:g}..1)")
        out.append(float(x))
    return tuple(out)


def parse_gamepad(data: dict[str, Any]) -> GamepadEvent:
    """The checked state of a {"type": "gamepad", ...} message, or InputError."""
    index = data.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < PADS:
        raise InputError(f"index must be 0..{PADS - 1}, not {index!r:.40}")
    pad_id = data.get("id", "")
    if not isinstance(pad_id, str) or len(pad_id) > MAX_ID:
        raise InputError(f"id must be a string of at most {MAX_ID} characters")
    t = data.get("t")
    if t is not None and (
        isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1e15
    ):  # NaN and infinity fail the range
        raise InputError("t must be a number of ms (0..1e15)")
    return GamepadEvent(
        index=index,
        pad_id=pad_id,
        buttons=_values(data, "buttons", len(BUTTONS), 0.0),
        axes=_values(data, "axes", len(AXES), -1.0),
        t=None if t is None else float(t),
    )


def key_profile(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """DEFAULT_KEYS with `[input.gamepad_keys]` applied: control name (or a button's index,
    "0".."16") -> DOM code, "" unmaps it. ValueError names a bad entry."""
    profile = dict(DEFAULT_KEYS)
    for name, code in (overrides or {}).items():
        control = BUTTONS[int(name)] if name.isdigit() and int(name) < len(BUTTONS) else name
        if control not in CONTROLS:
            raise ValueError(
                f"gamepad_keys: {name!r} is not a pad control (a button index 0..16, or one "
                f"of {', '.join(CONTROLS)})"
            )
        if not isinstance(code, str) or (code and code not in {*DOM_CODES, *MOUSE_BUTTONS}):
            raise ValueError(
                f"gamepad_keys.{name}: {code!r} is not a DOM key code ('Space', 'KeyZ', ...) "
                "or a mouse button (MouseLeft, MouseMiddle, MouseRight)"
            )
        if code:
            profile[control] = code
        else:
            profile.pop(control, None)
    return profile


def uinput_writable(path: str = "/dev/uinput") -> bool:
    return os.access(path, os.W_OK)


def resolve(mode: GamepadMode, uinput_path: str = "/dev/uinput") -> GamepadMode:
    """`auto` -> "uinput" where the device is writable, else "keys"; others as they are."""
    if mode == "auto":
        return "uinput" if uinput_writable(uinput_path) else "keys"
    return mode


class Sink(Protocol):
    def send(self, session: str, event: InputEvent) -> None: ...

    def release(self, session: str) -> None: ...


class Pad(Protocol):
    """A virtual pad (uinput.VirtualPad)."""

    def update(self, buttons: tuple[float, ...], axes: tuple[float, ...]) -> None: ...

    def neutral(self) -> None: ...

    def close(self) -> None: ...


class GamepadSink:
    """InputSink around a keyboard-and-mouse sink (an XTestInjector): gamepad events are
    mapped here, everything else passes through; `release` lets go of both."""

    def __init__(
        self,
        inner: Sink,
        mode: GamepadMode = "keys",
        keys: Mapping[str, str] | None = None,
        pad_factory: Callable[[int], Pad] | None = None,
    ) -> None:
        self.inner = inner
        self.mode = resolve(mode)
        self.profile = key_profile(keys)
        self.pad_factory = pad_factory
        self.pads: dict[str, dict[int, frozenset[str]]] = {}  # session -> index -> controls
        self.held: dict[str, set[str]] = {}  # session -> DOM codes it holds through its pads
        self.virtual: dict[int, Pad] = {}  # index -> uinput pad
        self.driver: dict[int, str] = {}  # index -> the session that moved it last
        self.aim: dict[str, dict[int, tuple[float, float]]] = {}  # session -> index -> rx, ry
        self._rest: dict[str, tuple[float, float]] = {}  # session -> pointer pixels not sent
        self._timer: asyncio.TimerHandle | None = None
        self.stick_is_pointer = not any(c.startswith("rs_") for c in self.profile)
        self.events = 0
        log.info("input: gamepads %s", self.mode)

    @classmethod
    def for_display(cls, inner: Sink | None, cfg: Any) -> GamepadSink | None:
        """Around an x11 source's injector (None: no display here, agents map the pads),
        from an `[input]` section (InputConfig: gamepad, gamepad_keys)."""
        return None if inner is None else cls(inner, cfg.gamepad, cfg.gamepad_keys)

    def send(self, session: str, event: InputEvent) -> None:
        if not isinstance(event, GamepadEvent):
            self.inner.send(session, event)
            return
        self.events += 1
        if self.mode == "off":
            raise InjectError('gamepads are off here ([input] gamepad = "off")')
        if self.mode == "uinput":
            self._virtual(session, event)
        else:
            self._keys(session, event)

    def _keys(self, session: str, event: GamepadEvent) -> None:
        pads = self.pads.setdefault(session, {})
        pads[event.index] = event.controls()
        want = {self.profile[c] for cs in pads.values() for c in cs if c in self.profile}
        held = self.held.setdefault(session, set())
        errors = []
        for code in sorted(held - want):
            held.discard(code)  # up even when the display is gone: it holds nothing then
            try:
                self.inner.send(session, _press(code, False, event.t))
            except InjectError as e:
                errors.append(str(e))
        for code in sorted(want - held):
            try:
                self.inner.send(session, _press(code, True, event.t))
                held.add(code)
            except InjectError as e:  # the policy refused it (a chord) or no display
                errors.append(str(e))
        self._aim(session, event)
        if errors:
            raise InjectError("; ".join(dict.fromkeys(errors)))

    # -- the right stick as the pointer ------------------------------------------------------

    def _aim(self, session: str, event: GamepadEvent) -> None:
        rx, ry = event.axes[2], event.axes[3]
        aims = self.aim.setdefault(session, {})
        if self.stick_is_pointer and max(abs(rx), abs(ry)) > AIM_DEAD:
            aims[event.index] = (rx, ry)
        else:
            aims.pop(event.index, None)
        if not aims:
            del self.aim[session]
            self._rest.pop(session, None)
        self._schedule()

    def _schedule(self) -> None:
        if not self.aim or self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (a test calls tick() itself)
        self._timer = loop.call_later(1.0 / AIM_HZ, self._ticked)

    def _ticked(self) -> None:
        self._timer = None
        self.tick()
        self._schedule()

    def tick(self, dt: float = 1.0 / AIM_HZ) -> None:
        """Move the pointer of every session whose right stick is pushed by dt's worth."""
        for session, aims in list(self.aim.items()):
            ax, ay = self._rest.get(session, (0.0, 0.0))
            for rx, ry in aims.values():
                ax += _curve(rx) * AIM_SPEED * dt
                ay += _curve(ry) * AIM_SPEED * dt
            dx, dy = round(ax), round(ay)
            self._rest[session] = (ax - dx, ay - dy)
            if not (dx or dy):
                continue
            try:
                self.inner.send(session, InputEvent(kind="mousemove", dx=dx, dy=dy, relative=True))
            except InjectError as e:  # no display, the window gone: until the stick moves again
                log.debug("input: pad pointer of %s stopped: %s", session, e)
                self.aim.pop(session, None)

    def _virtual(self, session: str, event: GamepadEvent) -> None:
        pad = self.virtual.get(event.index)
        if pad is None:
            if self.pad_factory is None:
                from .uinput import VirtualPad

                self.pad_factory = VirtualPad
            try:
                pad = self.pad_factory(event.index)
            except OSError as e:
                raise InjectError(f"cannot create a virtual pad: {e}") from None
            self.virtual[event.index] = pad
        self.driver[event.index] = session
        try:
            pad.update(event.buttons, event.axes)
        except OSError as e:
            raise InjectError(f"virtual pad {event.index}: {e}") from None

    def release(self, session: str) -> None:
        """Every key a session's pads hold goes up, its virtual pads go neutral, and what it
        holds on the keyboard and mouse is let go."""
        self.pads.pop(session, None)
        self.aim.pop(session, None)
        self._rest.pop(session, None)
        self.held.pop(session, None)  # the inner sink's release lets go of the keys
        for index, who in list(self.driver.items()):
            if who == session:
                del self.driver[index]
                try:
                    self.virtual[index].neutral()
                except OSError as e:
                    log.info("input: virtual pad %d: %s", index, e)
        self.inner.release(session)

    def release_all(self) -> None:
        for session in {*self.pads, *self.driver.values()}:
            self.release(session)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.aim.clear()
        for pad in self.virtual.values():
            try:
                pad.close()
            except OSError as e:
                log.info("input: closing a virtual pad: %s", e)
        self.virtual.clear()
        self.driver.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "events": self.events,
            "virtual_pads": len(self.virtual),
            "keys_held": sum(len(h) for h in self.held.values()),
        }


def _press(code: str, down: bool, t: float | None) -> InputEvent:
    """A profile's target pressed or let go: a key (DOM code) or a mouse button."""
    if code in MOUSE_BUTTONS:
        return InputEvent(kind="mousedown" if down else "mouseup", button=MOUSE_BUTTONS[code], t=t)
    return InputEvent(kind="keydown" if down else "keyup", code=code, t=t)


def _curve(v: float) -> float:
    """A stick's value past the dead zone, squared (fine aim near the centre), signed."""
    s = max(0.0, (abs(v) - AIM_DEAD) / (1.0 - AIM_DEAD))
    return math.copysign(s * s, v)

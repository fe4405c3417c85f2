"""A player's input event, checked before anything acts on it.

The data channel's "input" messages (and the same events on GET /api/input) are JSON from a
browser, so from anyone: every field is checked for type and range here and the event is
refused with a reason (InputError) otherwise. Refused events do nothing; the session lives on.

    {"type": "input", "kind": K, ...}
    mousemove   "x", "y" in 0..1 of the picture (absolute), or "dx", "dy" in pixels of the
                viewer's screen with "relative": true (pointer lock: movementX/Y)
    mousedown   "button" 0..4 (DOM: left, middle, right, back, forward), optional "x", "y"
    mouseup
    wheel       "dx", "dy": the wheel delta in pixels (DOM deltaMode 0), optional "x", "y"
    keydown     "code" (DOM KeyboardEvent.code) and/or "key" (KeyboardEvent.key); "repeat"
    keyup
    every kind  optional "t" (the page's clock, ms since the epoch) and "id" (an integer the
                page sets on presses it wants acknowledged: click-to-photon)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .keys import known_key

KINDS = ("mousemove", "mousedown", "mouseup", "wheel", "keydown", "keyup")
MAX_DELTA = 10_000.0  # pixels of one relative move or wheel event
MAX_KEY = 32  # characters of `key` and `code` ("ArrowLeft"; a key is one grapheme or a name)
MAX_ID = 2**53  # a page's counter, exact in a JS number


class InputError(ValueError):
    """Why an input event was refused."""


class InjectError(RuntimeError):
    """A checked event that could not be injected (the reason goes back to the player)."""


@dataclass(frozen=True)
class InputEvent:
    kind: str
    x: float | None = None  # 0..1 of the picture
    y: float | None = None
    dx: float = 0.0
    dy: float = 0.0
    relative: bool = False
    button: int = 0
    code: str = ""
    key: str = ""
    repeat: bool = False
    t: float | None = None
    id: int | None = None

    @property
    def press(self) -> bool:
        return self.kind in ("mousedown", "keydown")

    def as_message(self) -> dict[str, Any]:
        """The event as the JSON the viewer sent (what /api/input streams to agents)."""
        out: dict[str, Any] = {"type": "input", "kind": self.kind}
        if self.x is not None and self.y is not None:
            out["x"], out["y"] = self.x, self.y
        if self.kind == "wheel" or self.relative:
            out["dx"], out["dy"] = self.dx, self.dy
        if self.relative:
            out["relative"] = True
        if self.kind in ("mousedown", "mouseup"):
            out["button"] = self.button
        if self.kind in ("keydown", "keyup"):
            out["code"], out["key"] = self.code, self.key
            if self.repeat:
                out["repeat"] = True
        if self.t is not None:
            out["t"] = self.t
        if self.id is not None:
            out["id"] = self.id
        return out


def _number(data: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    v = data.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InputError(f"{name} must be a number, not {v!r:.40}")
    if not lo <= v <= hi:
        raise InputError(f"{name} = {v:g} is out of range ({lo:g}..{hi:g})")
    return float(v)


def _text(data: dict[str, Any], name: str) -> str:
    v = data.get(name, "")
    if v is None:
        return ""
    if not isinstance(v, str) or len(v) > MAX_KEY:
        raise InputError(f"{name} must be a string of at most {MAX_KEY} characters")
    return v


def _point(data: dict[str, Any], required: bool) -> tuple[float | None, float | None]:
    x, y = _number(data, "x", 0.0, 1.0), _number(data, "y", 0.0, 1.0)
    if (x is None) != (y is None) or (required and x is None):
        raise InputError("x and y (0..1 of the picture) go together")
    return x, y


def parse_input(data: dict[str, Any]) -> InputEvent:
    """The checked event of a {"type": "input", ...} message, or InputError."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}, not {kind!r:.40}")
    t = _number(data, "t", 0.0, 1e15)
    raw_id = data.get("id")
    if raw_id is not None and (
        isinstance(raw_id, bool) or not isinstance(raw_id, int) or not 0 <= raw_id <= MAX_ID
    ):
        raise InputError("id must be a non-negative integer")
    common: dict[str, Any] = {"kind": kind, "t": t, "id": raw_id}
    if kind == "mousemove":
        relative = data.get("relative", False)
        if not isinstance(relative, bool):
            raise InputError("relative must be true or false")
        if relative:
            dx = _number(data, "dx", -MAX_DELTA, MAX_DELTA) or 0.0
            dy = _number(data, "dy", -MAX_DELTA, MAX_DELTA) or 0.0
            return InputEvent(dx=dx, dy=dy, relative=True, **common)
        x, y = _point(data, required=True)
        return InputEvent(x=x, y=y, **common)
    if kind in ("mousedown", "mouseup"):
        button = data.get("button", 0)
        if isinstance(button, bool) or not isinstance(button, int) or not 0 <= button <= 4:
            raise InputError(f"button must be 0..4 (DOM MouseEvent.button), not {button!r:.40}")
        x, y = _point(data, required=False)
        return InputEvent(x=x, y=y, button=button, **common)
    if kind == "wheel":
        dx = _number(data, "dx", -MAX_DELTA, MAX_DELTA) or 0.0
        dy = _number(data, "dy", -MAX_DELTA, MAX_DELTA) or 0.0
        x, y = _point(data, required=False)
        return InputEvent(x=x, y=y, dx=dx, dy=dy, **common)
    code, key = _text(data, "code"), _text(data, "key")
    if not known_key(code, key):
        raise InputError(f"unknown key (code {code!r}, key {key!r})")
    repeat = data.get("repeat", False)
    if not isinstance(repeat, bool):
        raise InputError("repeat must be true or false")
    return InputEvent(code=code, key=key, repeat=repeat, **common)

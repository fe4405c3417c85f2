"""What a player may do to the X display they drive: the `[input]` policy (issue 25).

Player events are injected into a real X display. On a display that holds only the game that
is the game; on a desktop it is the desktop: Super opens the launcher, Ctrl+Alt+T a terminal,
Alt+F2 a run dialog, and a pointer free on the root window clicks anything. So the policy is
applied where events are injected (xtest.py), which the service's x11 source and the remote
agent share:

- keys: a press that would make a chord the desktop acts on is dropped and counted, never
  injected: any Super/Meta/Hyper key, Ctrl+Alt+anything (Delete and BackSpace included),
  Alt+F1..F24, Alt+Tab, Alt+Escape, Alt+Space, Ctrl+Escape, Print/SysRq. The chord is judged
  on every key the display holds from any session (what X sees), on each press, modifiers
  included: W held, then Ctrl, then Alt is refused at the Alt, or the server's autorepeat of
  W would deliver Ctrl+Alt+W. `allow_chords` re-allows exact chords ("Alt+F4"); `keys`, when
  set, allows only the keys it lists.
- characters not on the keymap: typed by remapping a spare keycode only when `unicode`.
- the pointer: confined to one window when `window` names it (window.py); otherwise clamped
  to the display.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .keys import DOM_CODES, DOM_KEYS

# keysym names of modifier keys -> the class a chord is judged by
MODIFIERS = {
    "Control_L": "ctrl",
    "Control_R": "ctrl",
    "Alt_L": "alt",
    "Alt_R": "alt",
    "Shift_L": "shift",
    "Shift_R": "shift",
    "ISO_Level3_Shift": "altgr",
    **{f"{m}_{s}": "super" for m in ("Super", "Meta", "Hyper") for s in "LR"},
}
MODIFIER_CLASSES = {"ctrl", "alt", "shift", "altgr", "super"}
_ALIASES = {  # how a person writes a modifier in allow_chords
    "ctrl": "ctrl",
    "control": "ctrl",
    "alt": "alt",
    "shift": "shift",
    "altgr": "altgr",
    "altgraph": "altgr",
    "super": "super",
    "meta": "super",
    "hyper": "super",
    "win": "super",
    "os": "super",
}
_FKEY = re.compile(r"f([1-9]|1[0-9]|2[0-4])")
_WINDOW_ID = re.compile(r"(0x[0-9a-fA-F]+|[0-9]+)")


class PolicyError(ValueError):
    """A policy setting that names no key or chord (the message says which)."""


def token(name: str) -> str:
    """The chord token of a key by its keysym name ("Control_R" -> "ctrl", "T" -> "t")."""
    return MODIFIERS.get(name) or name.lower()


def key_token(text: str) -> str:
    """One key of a setting: a DOM code ("KeyT"), a DOM key name ("Enter"), a keysym name
    ("Print", "BackSpace") or a character ("t")."""
    alias = _ALIASES.get(text.lower())
    if alias:
        return alias
    if text in DOM_CODES:
        return token(DOM_CODES[text][0])
    named = DOM_KEYS.get(text)
    if named:
        return token(named)
    if (len(text) == 1 and text.isprintable()) or re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", text):
        return token(text)
    raise PolicyError(f"{text!r} is not a key (a DOM code like 'KeyT', or a name like 'F4')")


def parse_chord(text: str) -> frozenset[str]:
    """ "Ctrl+Alt+T" -> {"ctrl", "alt", "t"} ("+" alone is the plus key: "Ctrl++")."""
    parts = [p.strip() for p in re.split(r"\+(?!$)", text.strip())]
    if not text.strip() or any(not p for p in parts):
        raise PolicyError(f"{text!r} is not a chord (keys joined by '+', e.g. 'Alt+F4')")
    return frozenset(key_token(p) for p in parts)


def window_id(spec: str) -> int | None:
    """The X window id a `window` setting names (0x1234 or 4660), None for a name."""
    return int(spec, 0) if _WINDOW_ID.fullmatch(spec.strip()) else None


def _blocked(chord: frozenset[str], new: str) -> str | None:
    """Why the default rules refuse pressing `new` with `chord` (every key held, and it)."""
    keys = chord - MODIFIER_CLASSES
    if "super" in chord:
        return "Super/Meta/Hyper"
    if new in ("print", "sys_req"):
        return "Print/SysRq"
    if "ctrl" in chord and "alt" in chord and keys:
        return "Ctrl+Alt+" + "+".join(sorted(keys))
    if "alt" in chord:
        for key in sorted(keys):
            if _FKEY.fullmatch(key) or key in ("tab", "escape", "space"):
                return f"Alt+{key}"
    if "ctrl" in chord and "escape" in keys:
        return "Ctrl+Escape"
    return None


@dataclass
class InputPolicy:
    """The `[input]` policy, compiled (from InputConfig through `from_config`)."""

    window: str = ""  # "" : the whole display; else an X window id or a name substring
    keys: frozenset[str] | None = None  # tokens allowed; None: every key
    allow_chords: frozenset[frozenset[str]] = frozenset()
    unicode: bool = False
    blocked: dict[str, int] = field(default_factory=dict)  # reason -> presses dropped

    @classmethod
    def from_config(cls, cfg: Any) -> InputPolicy:
        """From an InputConfig (or anything with its attributes)."""
        return cls.build(
            window=getattr(cfg, "window", ""),
            keys=getattr(cfg, "keys", None) or None,
            allow_chords=getattr(cfg, "allow_chords", ()),
            unicode=getattr(cfg, "unicode", False),
        )

    @classmethod
    def build(
        cls,
        *,
        window: str = "",
        keys: Iterable[str] | None = None,
        allow_chords: Iterable[str] = (),
        unicode: bool = False,
    ) -> InputPolicy:
        """From the settings as written (PolicyError names a bad one)."""
        return cls(
            window=window.strip(),
            keys=None if keys is None else frozenset(key_token(k) for k in keys),
            allow_chords=frozenset(parse_chord(c) for c in allow_chords),
            unicode=unicode,
        )

    def check_press(self, name: str, held: Iterable[str]) -> str | None:
        """Why pressing the key `name` (keysym name or character) while the display holds
        `held` is refused, or None; a refusal is counted."""
        new = token(name)
        reason = None
        if self.keys is not None and new not in self.keys:
            reason = f"{name} is not in [input] keys"
        else:
            chord = frozenset({new, *(token(h) for h in held)})
            why = _blocked(chord, new)
            if why and chord not in self.allow_chords:
                reason = f"{why} is blocked ([input] allow_chords re-allows a chord)"
        if reason:
            self.count("keys" if self.keys is not None and new not in self.keys else "chord")
        return reason

    def count(self, what: str) -> None:
        self.blocked[what] = self.blocked.get(what, 0) + 1

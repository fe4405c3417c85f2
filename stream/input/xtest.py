"""Player input injected into an X display through XTEST (python-xlib).

Measured under Xvfb (/work/scratch/x11/REPORT.md): a fake_input call costs about 40 us and
reaches a client in 0.5-0.7 ms (p50), against 3 ms for an xdotool process per event, so events
are injected inline, with one flush each and no round trip on the common path (the display
size comes from root ConfigureNotify events, keycodes from python-xlib's local keymap).

- Absolute moves: the picture's 0..1 coordinates -> root pixels of the display's current
  size (the viewer page has already taken its letterboxing off).
- Relative moves (pointer lock): XTestFakeRelativeMotionEvent (MotionNotify, detail=1), which
  games in SDL's relative mode read as XI2 raw motion even at the screen's edge. A player in
  pointer lock sends relative moves only: an absolute XTEST move also yields raw motion, read
  as a huge jump.
- Keys: DOM code -> keysym (keys.py) -> keycode through the display's keymap; the DOM key
  for characters without a code; a keysym with no keycode is written onto a spare keycode
  (eight, recycled oldest first and never reverted straight away: clients translate a keycode
  when they read the event, so an early revert shows them the old symbol). Each remap sends
  MappingNotify to every client, so it is for rare characters only.
- The `[input]` policy (policy.py) is applied here, where the service's x11 source and the
  agent both inject: chords a desktop acts on are dropped (counted in `blocked`), characters
  are remapped only with `unicode`, and with `window` the pointer is confined to that window
  (window.py: absolute moves clamped here, relative ones fenced by XFixes barriers) and input
  is refused while it is gone.
- Held keys and buttons are counted per session (a key two players hold in shared control is
  released when the last lets go), and `release(session)` lets go of everything a session
  holds: a player who leaves or whose connection dies leaves no key stuck.

A lost X server (Xlib ConnectionClosedError) is logged once and reconnected in a thread, at
most once a second, with nothing held.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import struct
import termios
import threading
import time
from collections import OrderedDict

from Xlib import XK, X
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.ext import xtest

from ..xlib_tables import open_display
from . import landing
from .events import InjectError, InputEvent
from .keys import DOM_BUTTONS, DOM_CODES, DOM_KEYS, char_keysym
from .policy import InputPolicy
from .window import Rect, WindowTracker

log = logging.getLogger(__name__)

XK.load_keysym_group("xkb")  # ISO_Level3_Shift; Xlib.XK loads latin1 + miscellany only
XK.load_keysym_group("xf86")

WHEEL_PX = 100.0  # wheel pixels per notch (Chromium: 100 or 120 per notch of a mouse)
WHEEL_IDLE_S = 0.3  # after this long without wheel events, the next one scrolls at once
SPARE_KEYCODES = 8
RECONNECT_S = 1.0
BACKLOG = 64 * 1024  # bytes unread by the X server before events are refused
_LOST = (xerror.ConnectionClosedError, xerror.DisplayError, OSError)


class XTestInjector:
    """One display's XTEST connection, shared by every session that controls it."""

    def __init__(
        self, display: str, *, keymap: str = "keysym", policy: InputPolicy | None = None
    ) -> None:
        self.display_name = display
        self.use_evdev = keymap == "evdev"
        self.policy = policy if policy is not None else InputPolicy()
        self.window = WindowTracker(display, self.policy.window) if self.policy.window else None
        self._window_gen = 0  # the tracker's generation the pointer was last put inside
        self._names: dict[int, str] = {}  # keycode -> the key's name, while held (chords)
        self.d: xdisplay.Display | None = None
        self._next_try = 0.0
        self._connecting: threading.Thread | None = None
        self._told = False  # the display's absence was logged once
        self.keys: dict[int, set[str]] = {}  # keycode -> sessions holding it
        self.buttons: dict[int, set[str]] = {}  # X button -> sessions holding it
        self.injected = 0
        self.lost = 0
        self._wheel: dict[str, tuple[float, float, float]] = {}  # session -> (t, acc x, acc y)
        self._connect()

    # -- the connection ------------------------------------------------------------------
    # Opening a display is a few round trips; a hung X server (stopped, not dead) would never
    # answer them and freeze the caller, which is the service's event loop. So it happens in
    # a thread, and events are refused until it is done. Events never wait for the server
    # (python-xlib's flush writes what the socket takes and keeps the rest), so a server that
    # stops reading would grow that buffer without end: once BACKLOG bytes wait, in the socket
    # and in python-xlib, events are refused.

    def _connect(self) -> None:
        busy = self._connecting is not None and self._connecting.is_alive()
        if self.d is not None or busy or time.monotonic() < self._next_try:
            return
        self._next_try = time.monotonic() + RECONNECT_S
        self._connecting = threading.Thread(
            target=self._open, name=f"xtest {self.display_name}", daemon=True
        )
        self._connecting.start()

    def ready(self, timeout_s: float = 10.0) -> bool:
        """Wait (in a thread, not on the event loop) for the connection; True when there."""
        deadline = time.monotonic() + timeout_s
        while self.d is None and time.monotonic() < deadline:
            self._connect()
            if self._connecting is not None:
                self._connecting.join(max(0.0, min(0.2, deadline - time.monotonic())))
        return self.d is not None

    def _open(self) -> None:
        try:
            d = open_display(self.display_name)
            if not d.has_extension("XTEST"):
                d.close()
                raise InjectError(f"X display {self.display_name} has no XTEST extension")
            self.root = d.screen().root
            self.root.change_attributes(event_mask=X.StructureNotifyMask)
            g = self.root.get_geometry()
            self.size = (g.width, g.height)
            lo, hi = d.display.info.min_keycode, d.display.info.max_keycode
            mapping = d.get_keyboard_mapping(lo, hi - lo + 1)
        except (InjectError, *_LOST) as e:
            if not self._told:
                log.warning("input: cannot open X display %s (%s); retrying", self.display_name, e)
                self._told = True
            return
        # a keycode with no symbols may still be bound to a modifier (Mod4 is Super): never
        # remap one of those, or a character would press it
        bound = {kc for row in d.get_modifier_mapping() for kc in row if kc}
        spare = [
            lo + i
            for i, syms in enumerate(mapping)
            if not any(syms) and lo + i > 8 and lo + i not in bound
        ]
        self._spare = spare[-SPARE_KEYCODES:]
        self._remapped: OrderedDict[int, int] = OrderedDict()  # keysym -> keycode, LRU
        self._cache: dict[int, tuple[int, int]] = {}  # keysym -> (keycode, shift level)
        self.shift = d.keysym_to_keycode(XK.XK_Shift_L)
        self.level3 = d.keysym_to_keycode(XK.string_to_keysym("ISO_Level3_Shift"))
        self._told = False
        self.d = d  # last: the event loop uses the connection from here on
        log.info("input: injecting into %s (%dx%d) through XTEST", self.display_name, *self.size)

    def _live(self) -> xdisplay.Display:
        d = self.d
        if d is None:
            self._connect()
            raise InjectError(f"X display {self.display_name} is not connected (yet)")
        if _unread(d) > BACKLOG:
            raise InjectError(f"X display {self.display_name} is not reading its input (hung?)")
        return d

    def _lost(self, e: Exception) -> InjectError:
        log.warning("input: X display %s went away (%s); reconnecting", self.display_name, e)
        self.lost += 1
        self.d = None
        self.keys.clear()
        self.buttons.clear()
        self._names.clear()
        return InjectError(f"X display {self.display_name} went away")

    def _poll(self, d: xdisplay.Display) -> None:
        while d.pending_events():
            ev = d.next_event()
            if ev.type == X.ConfigureNotify and ev.window == self.root:
                self.size = (ev.width, ev.height)
            elif ev.type == X.MappingNotify:
                d.refresh_keyboard_mapping(ev)
                self._cache.clear()

    # -- the sink ------------------------------------------------------------------------------

    def send(self, session: str, event: InputEvent) -> None:
        """Inject one checked event for a session allowed to control (InjectError: not
        injected, with the reason)."""
        d = self._live()
        area = self._area()
        try:
            self._poll(d)
            self._inject(d, session, event, area)
            d.flush()
        except _LOST as e:
            raise self._lost(e) from None
        self.injected += 1
        landing.landed(self.display_name)  # its capture grabs the damage that follows at once

    @property
    def blocked(self) -> dict[str, int]:
        """Events the policy dropped, by what: "chord", "keys", "unicode", "window", "focus"."""
        return self.policy.blocked

    def _area(self) -> Rect:
        """Where the pointer may go: the policy's window, else the whole display."""
        if self.window is None:
            return (0, 0, *self.size)
        rect = self.window.rect
        if rect is None:
            self.policy.count("window")
            if self.keys or self.buttons:
                self.release_all()  # whatever has the focus now gets no stuck key
            raise InjectError(f"input refused: {self.window.why} ([input] window)")
        return rect

    def release(self, session: str) -> None:
        """Let go of every key and button only this session holds."""
        self._wheel.pop(session, None)
        try:
            d = self._live()
        except InjectError:
            return  # a display that is gone holds nothing
        try:
            for held, kind in ((self.keys, X.KeyRelease), (self.buttons, X.ButtonRelease)):
                for code, owners in list(held.items()):
                    if session in owners:
                        owners.discard(session)
                        if not owners:
                            del held[code]
                            xtest.fake_input(d, kind, code)
                            log.info("input: released %s %d held by %s", _NAME[kind], code, session)
            d.flush()
        except _LOST as e:
            self._lost(e)

    def release_all(self) -> None:
        """Let go of everything every session holds (an agent that lost its server)."""
        for session in {s for held in (self.keys, self.buttons) for o in held.values() for s in o}:
            self.release(session)

    def close(self) -> None:
        self.release_all()
        if self.window is not None:
            self.window.close()
        d, self.d = self.d, None
        if d is not None:
            with contextlib.suppress(*_LOST):
                d.close()

    # -- events ------------------------------------------------------------------------------

    def _inject(self, d: xdisplay.Display, session: str, ev: InputEvent, area: Rect) -> None:
        ax, ay, w, h = area
        moved = self.window is not None and self.window.generation != self._window_gen
        if moved:  # the window is new or moved: put the pointer inside it before anything
            self._window_gen = self.window.generation if self.window is not None else 0
        if ev.x is not None and ev.y is not None and not ev.relative:
            x = ax + min(w - 1, int(ev.x * w))
            y = ay + min(h - 1, int(ev.y * h))
            xtest.fake_input(d, X.MotionNotify, detail=0, root=self.root.id, x=x, y=y)
        elif moved and self.window is not None:
            x, y = self.window.entry
            xtest.fake_input(d, X.MotionNotify, detail=0, root=self.root.id, x=x, y=y)
        if ev.kind == "mousemove" and ev.relative:
            dx, dy = round(ev.dx), round(ev.dy)
            if dx or dy:
                xtest.fake_input(d, X.MotionNotify, detail=1, x=dx, y=dy)
        elif ev.kind in ("mousedown", "mouseup"):
            self._hold(d, session, self.buttons, DOM_BUTTONS[ev.button], ev.kind == "mousedown")
        elif ev.kind == "wheel":
            self._scroll(d, session, ev.dx, ev.dy)
        elif ev.kind in ("keydown", "keyup"):
            self._key(d, session, ev)

    def _hold(
        self, d: xdisplay.Display, session: str, held: dict[int, set[str]], code: int, down: bool
    ) -> None:
        """Press or release for one session; X sees the first press and the last release."""
        if down:
            owners = held.setdefault(code, set())
            if not owners:
                xtest.fake_input(d, X.KeyPress if held is self.keys else X.ButtonPress, code)
            owners.add(session)
            return
        owners = held.get(code, set())
        if session not in owners:
            return  # not held by this session: nothing to let go
        owners.discard(session)
        if not owners:
            del held[code]
            xtest.fake_input(d, X.KeyRelease if held is self.keys else X.ButtonRelease, code)

    def _scroll(self, d: xdisplay.Display, session: str, dx: float, dy: float) -> None:
        """Wheel pixels -> notches (X buttons 4-7), accumulated per session so a touchpad's
        small deltas add up; the first event after a pause scrolls at once (one notch)."""
        now = time.monotonic()
        t, ax, ay = self._wheel.get(session, (0.0, 0.0, 0.0))
        fresh = now - t > WHEEL_IDLE_S
        if fresh:
            ax = ay = 0.0
        ny, ay = _notches(ay + dy, fresh)
        nx, ax = _notches(ax + dx, fresh)
        for notches, neg, pos in ((ny, 4, 5), (nx, 6, 7)):
            b = pos if notches > 0 else neg
            for _ in range(abs(notches)):
                xtest.fake_input(d, X.ButtonPress, b)
                xtest.fake_input(d, X.ButtonRelease, b)
        self._wheel[session] = (now, ax, ay)

    def _key(self, d: xdisplay.Display, session: str, ev: InputEvent) -> None:
        down = ev.kind == "keydown"
        kc, level, name = self._keycode(d, ev, down)
        if not kc:
            raise InjectError(f"no keycode for key {ev.key!r} (code {ev.code!r}) on this display")
        if down and ev.repeat and kc in self.keys:
            return  # the X server repeats a held key itself
        # the `key` fallback's character may need Shift/AltGr that the browser did not send
        # as their own events: add them around the press when not held already
        mods = []
        if down and level in (1, 3) and self.shift and self.shift not in self.keys:
            mods.append(self.shift)
        if down and level in (2, 3) and self.level3 and self.level3 not in self.keys:
            mods.append(self.level3)
        for m in mods:
            xtest.fake_input(d, X.KeyPress, m)
        self._hold(d, session, self.keys, kc, down)
        if kc in self.keys:
            self._names.setdefault(kc, name)
        else:
            self._names.pop(kc, None)
        for m in reversed(mods):
            xtest.fake_input(d, X.KeyRelease, m)

    def _keycode(self, d: xdisplay.Display, ev: InputEvent, down: bool) -> tuple[int, int, str]:
        """(keycode, shift level, name) of a key event. A press is judged by the policy under
        the name it is pressed as, before anything is remapped or pressed (InjectError)."""
        if ev.code in DOM_CODES:
            name, evdev = DOM_CODES[ev.code]
            self._judge(name, down)
            if self.use_evdev:
                return evdev + 8, 0, name
            kc, _ = self._for_keysym(d, XK.string_to_keysym(name))
            if kc:
                return kc, 0, name  # a physical key: its modifiers come as their own events
        if len(ev.key) == 1:
            self._judge(ev.key, down)
            kc, level = self._for_keysym(d, char_keysym(ev.key), remap=self.policy.unicode)
            if not kc and down and not self.policy.unicode:
                self.policy.count("unicode")
                raise InjectError(
                    f"{ev.key!r} is not on this display's keymap ([input] unicode = true types "
                    "it by remapping a spare keycode)"
                )
            return kc, level, ev.key
        named = DOM_KEYS.get(ev.key)
        if not named:
            return 0, 0, ev.key
        self._judge(named, down)
        kc, level = self._for_keysym(d, XK.string_to_keysym(named))
        return kc, level, named

    def _judge(self, name: str, down: bool) -> None:
        """A press the policy refuses (with every key the display holds) is never injected."""
        if down and self.window is not None and not self.window.focused:
            self.policy.count("focus")
            raise InjectError(f"key {name!r} refused: the game window does not have the focus")
        if down:
            held = [self._names[kc] for kc in self.keys if kc in self._names]
            why = self.policy.check_press(name, held)
            if why:
                raise InjectError(f"key {name!r} refused: {why}")

    def _for_keysym(self, d: xdisplay.Display, keysym: int, remap: bool = True) -> tuple[int, int]:
        """(keycode, shift level) of a keysym; a spare keycode is remapped when it has none
        (and `remap`)."""
        if not keysym:
            return 0, 0
        hit = self._cache.get(keysym)
        if hit is not None:
            return hit
        found = min(d.keysym_to_keycodes(keysym), key=lambda kc_level: kc_level[1], default=None)
        if found is not None and found[1] <= 3:
            best = found
        else:
            best = (self._remap(d, keysym), 0) if remap else (0, 0)
        if best[0]:
            self._cache[keysym] = best
        return best

    def _remap(self, d: xdisplay.Display, keysym: int) -> int:
        if keysym in self._remapped:
            self._remapped.move_to_end(keysym)
            return self._remapped[keysym]
        if not self._spare:
            return 0
        if len(self._remapped) < len(self._spare):
            kc = self._spare[len(self._remapped)]
        else:
            old, kc = self._remapped.popitem(last=False)
            self._cache.pop(old, None)
            if kc in self.keys:  # still held: release before it changes meaning
                xtest.fake_input(d, X.KeyRelease, kc)
                del self.keys[kc]
        # every level: no modifier needed. No round trip: the server applies it before our
        # next request, and clients get MappingNotify before the key event that follows
        d.change_keyboard_mapping(kc, [(keysym,) * 4])
        self._remapped[keysym] = kc
        return kc


_NAME = {X.KeyRelease: "key", X.ButtonRelease: "button"}


def _notches(acc: float, fresh: bool) -> tuple[int, float]:
    """Whole notches in `acc` wheel pixels (at most 10 an event) and what is left over."""
    n = int(acc / WHEEL_PX)
    if n == 0 and fresh and acc:
        return (1 if acc > 0 else -1), 0.0
    n = max(-10, min(10, n))
    return n, acc - n * WHEEL_PX


def _unread(d: xdisplay.Display) -> int:
    """Bytes for the X server that it has not read yet: the socket's send queue, and what
    python-xlib keeps when the socket takes no more."""
    waiting = len(d.display.data_send or b"")
    try:
        raw = fcntl.ioctl(d.display.socket.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return waiting
    return waiting + int(struct.unpack("i", raw)[0])

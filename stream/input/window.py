"""The game window a player's pointer is confined to (`[input] window`): found, followed, fenced.

A thread with its own X connection finds the window (by id, or the topmost viewable window
whose _NET_WM_NAME or WM_NAME contains the name), keeps its rectangle on the root current
(root SubstructureNotify and the window's StructureNotify wake it; it looks again every
REFRESH_S regardless), and fences it with XFixes pointer barriers (XFixes 5) that let the
pointer in but not out. The injector clamps absolute moves to `rect` itself; relative moves
(pointer lock, XTestFakeRelativeMotionEvent) are clamped by the barriers, which the X server
applies to relative motion only, measured under Xvfb: 500 px right from inside a 100 px wide
fence stops at its last column. The thread never blocks the service's event loop: a hung X
server stalls it, not the injector, and `rect` only goes stale.

When the window is gone (destroyed, unmapped, off the screen, or the connection lost) `rect`
is None and the injector refuses input until it is back; each change is logged once. Key
presses are refused while another window has the keyboard focus (`focused`; FocusOut on the
game window wakes the thread): the operator's terminal, focused when the service started,
would get the player's keys.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from typing import Any

from Xlib import X
from Xlib import error as xerror
from Xlib.protocol import rq
from Xlib.xobject.drawable import Window

from ..xlib_tables import open_display
from .policy import window_id

log = logging.getLogger(__name__)

REFRESH_S = 0.5
MAX_WINDOWS = 5000  # windows looked at per search for a name
_LOST = (xerror.ConnectionClosedError, xerror.DisplayError, OSError)
# barrier directions the pointer may cross (XFixes 5): in, never out
_POS_X, _POS_Y, _NEG_X, _NEG_Y = 1, 2, 4, 8

Rect = tuple[int, int, int, int]  # x, y, width, height on the root
_MASK = X.StructureNotifyMask | X.FocusChangeMask  # of the game window: moves, focus


class _QueryVersion(rq.ReplyRequest):
    """XFixesQueryVersion asking for 5.0 (python-xlib's own asks for 4.0, and the server
    refuses barrier requests from a client that announced less than 5)."""

    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(0),
        rq.RequestLength(),
        rq.Card32("major_version"),
        rq.Card32("minor_version"),
    )
    _reply = rq.Struct(
        rq.ReplyCode(),
        rq.Pad(1),
        rq.Card16("sequence_number"),
        rq.ReplyLength(),
        rq.Card32("major_version"),
        rq.Card32("minor_version"),
        rq.Pad(16),
    )


class _CreatePointerBarrier(rq.Request):
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(31),
        rq.RequestLength(),
        rq.Card32("barrier"),
        rq.Window("window"),
        rq.Int16("x1"),
        rq.Int16("y1"),
        rq.Int16("x2"),
        rq.Int16("y2"),
        rq.Card32("directions"),
        rq.Pad(2),
        rq.LengthOf("devices", 2),
        rq.List("devices", rq.Card16),
    )


class _DestroyPointerBarrier(rq.Request):
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(32),
        rq.RequestLength(),
        rq.Card32("barrier"),
    )


class WindowTracker:
    """Where the game window is, for the injector: `rect` (None: absent, with `why`)."""

    def __init__(self, display: str, spec: str) -> None:
        self.display_name = display
        self.spec = spec
        self.wid = window_id(spec)
        self.rect: Rect | None = None
        self.entry: tuple[int, int] = (0, 0)  # a point inside rect, near the pointer
        self.generation = 0  # +1 each time rect changes
        self.why = "not looked for yet"
        self.fenced = False  # barriers in place around rect
        self.focused = False  # the game window (or its frame) has the keyboard focus
        self._win: Window | None = None
        self._barriers: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"window {spec}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                d = open_display(self.display_name)
            except (*_LOST, xerror.XError) as e:
                self._publish(None, f"cannot open X display {self.display_name} ({e})")
                self._stop.wait(1.0)
                continue
            try:
                self._follow(d)
            except _LOST as e:
                self._publish(None, f"X display {self.display_name} went away ({e})")
            finally:
                self._barriers.clear()  # a closed connection's barriers go with it
                self._win = None
                with contextlib.suppress(*_LOST):
                    d.close()
            self._stop.wait(1.0)

    def _follow(self, d: Any) -> None:
        d.set_error_handler(lambda err, *_: log.debug("input window: %s", err))
        root = d.screen().root
        root.change_attributes(event_mask=X.SubstructureNotifyMask)
        xfixes = None
        if d.has_extension("XFIXES"):
            op = d.display.get_extension_major("XFIXES")
            v = _QueryVersion(display=d.display, opcode=op, major_version=5, minor_version=0)
            xfixes = op if v.major_version >= 5 else None
        if xfixes is None:
            log.warning("input: %s has no XFixes 5: relative moves are not fenced", self.spec)
        while not self._stop.is_set():
            rect, why = self._locate(d, root)
            if rect != self.rect and xfixes is not None:
                self._fence(d, root, xfixes, rect)
            self._publish(rect, why, d, root)
            d.flush()
            ready, _, _ = select.select([d.display.socket], [], [], REFRESH_S)
            if ready or d.pending_events():
                while d.pending_events():
                    d.next_event()  # any structure change: look again now

    def _locate(self, d: Any, root: Window) -> tuple[Rect | None, str]:
        try:
            win = self._find(d, root)
            if win is None:
                return None, f"no window named {self.spec!r}"
            if win.get_attributes().map_state != X.IsViewable:
                return None, f"window {win.id:#x} is not mapped"
            g = win.get_geometry()
            at = root.translate_coords(win, 0, 0)
            screen = root.get_geometry()
        except xerror.XError as e:  # BadWindow: it went away between two requests
            self._win = None
            return None, f"window {self.spec!r} went away ({type(e).__name__})"
        x0, y0 = max(at.x, 0), max(at.y, 0)
        x1, y1 = min(at.x + g.width, screen.width), min(at.y + g.height, screen.height)
        if x1 <= x0 or y1 <= y0:
            return None, f"window {win.id:#x} is off the screen"
        self.focused = self._has_focus(d, root, win)
        return (x0, y0, x1 - x0, y1 - y0), f"window {win.id:#x}"

    def _has_focus(self, d: Any, root: Window, win: Window) -> bool:
        """Keys go to the focus window: the game, a window inside it, or its frame (a window
        manager's) have it; PointerRoot sends them under the pointer, which is fenced in.
        Any other window (the operator's terminal) does not."""
        focus = d.get_input_focus().focus
        if not isinstance(focus, Window):
            return bool(focus == X.PointerRoot)
        if focus.id == win.id:
            return True
        for start, target in ((focus, win.id), (win, focus.id)):  # game above focus, or below
            w = start
            for _ in range(64):
                parent = w.query_tree().parent
                if not isinstance(parent, Window) or parent.id in (0, root.id):
                    break
                if parent.id == target:
                    return True
                w = parent
        return False

    def _find(self, d: Any, root: Window) -> Window | None:
        if self.wid is not None:
            if self._win is None:
                self._win = d.create_resource_object("window", self.wid)
                self._win.change_attributes(event_mask=_MASK)
            return self._win
        if self._win is not None and self.spec in _name(d, self._win):
            return self._win
        self._win = None
        stack = list(root.query_tree().children)  # bottom to top: pop() takes the topmost
        seen = 0
        while stack and seen < MAX_WINDOWS:
            w = stack.pop()
            seen += 1
            try:
                if w.get_attributes().map_state != X.IsViewable:
                    continue
                if self.spec in _name(d, w):
                    w.change_attributes(event_mask=_MASK)
                    self._win = w
                    return w
                stack.extend(w.query_tree().children)
            except xerror.XError:
                continue
        return None

    def _fence(self, d: Any, root: Window, op: int, rect: Rect | None) -> None:
        """Four barriers on the rectangle's edges, across the whole screen, each crossable
        inwards only: the pointer gets in from anywhere and out nowhere. They hold every
        pointer of the display (a local mouse too), so they go when the window does."""
        for b in self._barriers:
            _DestroyPointerBarrier(display=d.display, opcode=op, barrier=b)
        self._barriers.clear()
        self.fenced = False
        if rect is None:
            return
        x, y, w, h = rect
        big = 32767
        for x1, y1, x2, y2, dirs in (
            (x, 0, x, big, _POS_X),
            (x + w, 0, x + w, big, _NEG_X),
            (0, y, big, y, _POS_Y),
            (0, y + h, big, y + h, _NEG_Y),
        ):
            bid = d.display.allocate_resource_id()
            _CreatePointerBarrier(
                display=d.display,
                opcode=op,
                barrier=bid,
                window=root,
                x1=x1,
                y1=y1,
                x2=x2,
                y2=y2,
                directions=dirs,
                devices=[],
            )
            self._barriers.append(bid)
        d.sync()  # in place before the injector is told about the rectangle
        self.fenced = True

    def _publish(
        self, rect: Rect | None, why: str, d: Any | None = None, root: Window | None = None
    ) -> None:
        if rect is not None and d is not None and root is not None and rect != self.rect:
            p = root.query_pointer()
            x, y, w, h = rect
            self.entry = (min(max(p.root_x, x), x + w - 1), min(max(p.root_y, y), y + h - 1))
        if rect != self.rect:
            if rect is None:
                log.warning("input: refused until it is back: %s ([input] window)", why)
            else:
                log.info("input: confined to %s at %s", why, rect)
            self.rect = rect
            self.generation += 1
        self.why = why


def _name(d: Any, w: Window) -> str:
    """_NET_WM_NAME (UTF-8), else WM_NAME; "" when it has neither."""
    net = w.get_full_property(d.intern_atom("_NET_WM_NAME"), d.intern_atom("UTF8_STRING"))
    if net is not None and net.value:
        v = net.value
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    name = w.get_wm_name()
    if isinstance(name, bytes):
        return name.decode("latin-1")
    return name or ""

"""python-xlib connections that do not share their extension tables.

python-xlib 0.33 keeps the tables a connection fills from its server's extensions (event
classes by event code, error classes, extension major opcodes) on the protocol Display
*class*, so every connection of a process shares them. A process that talks to two X servers
whose extensions are numbered differently breaks: opening the second fails inside python-xlib
with "TypeError: 'type' object does not support item assignment" (seen here: an Xvfb then an
Xtigervnc in one process; upstream report: asweigart/pyautogui#202), and the first would decode
the second's numbering. The service meets this when the X server behind its display is
replaced by another kind (the x11 source and the injector reconnect in the same process).

`open_display` gives each connection its own copies of the core tables before python-xlib
fills them. What it relies on is checked on first use (`check`), so a python-xlib that changes
these attributes fails loudly here, naming them, rather than quietly sharing tables again.
"""

from __future__ import annotations

from typing import Any

from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.protocol import display as protocol_display
from Xlib.protocol import event as xevent

_TABLES = {
    "event_classes": xevent.event_class,  # the core protocol's, never mutated by python-xlib
    "error_classes": xerror.xerror_class,
    "extension_major_opcodes": {},
}
_installed = False


def check() -> None:
    """The attributes this module replaces are where it expects them (python-xlib 0.33)."""
    cls = protocol_display.Display
    missing = [name for name in _TABLES if not isinstance(getattr(cls, name, None), dict)]
    if missing or not isinstance(xevent.event_class, dict):
        raise RuntimeError(
            "python-xlib changed: Xlib.protocol.display.Display has no class-level "
            f"{', '.join(missing) or 'event_class'} dict; stream/xlib_tables.py needs updating"
        )


def _install() -> None:
    global _installed
    if _installed:
        return
    check()
    original = protocol_display.Display.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        for name, core in _TABLES.items():
            setattr(self, name, dict(core))  # this connection's own, before extensions fill it
        original(self, *args, **kwargs)

    protocol_display.Display.__init__ = __init__
    _installed = True


def open_display(name: str) -> xdisplay.Display:
    """A python-xlib connection to `name` with its own extension tables."""
    _install()
    d = xdisplay.Display(name)
    if d.display.event_classes is protocol_display.Display.event_classes:
        raise RuntimeError("python-xlib shares its event tables despite stream/xlib_tables.py")
    return d
